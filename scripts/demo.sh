#!/usr/bin/env bash
# make demo: the story of design.md on a temporary simulated cluster.
# Every step prints the command it runs, then its output.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/hsmkit-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export HSM_CONFIG="$work/cluster.yaml"
unset HSM_PIN HSM_ROLE HSM_SESSION HSM_OUTPUT HSM_PASSWORD

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# Passwords go on stdin, never on the command line.
with_pw() { local pw=$1; shift; printf '$ echo ******** | %s\n' "$*"; printf '%s\n' "$pw" | "$@"; }
fail_with_pw() { local pw=$1; shift; printf '$ echo ******** | %s\n' "$*"; if printf '%s\n' "$pw" | "$@"; then echo "demo: expected a refusal" >&2; exit 1; fi; }

step "1. A new cluster of two HSMs; the first HSM's users were cloned to the second"
run hsm-sim init --state "$work/state" --hsms 2 --seed 42
run hsm-sim list
run hsm-user list

step "2. Activate the cluster: the unactivated admin gets its password and becomes admin"
with_pw 'Admin-pass-1' hsm-user activate --password-stdin
with_pw 'Admin-pass-1' hsm-user login --username admin --role admin --password-stdin

step "3. Admins and crypto users"
with_pw 'Officer-pass-2' hsm-user create --username officer2 --role admin --password-stdin
with_pw 'Officer-pass-3' hsm-user create --username officer3 --role admin --password-stdin
with_pw 'Crypto-pass-1' hsm-user create --username app_crypto --role crypto-user --password-stdin
run hsm-user list

step "4. Someone keeps typing the wrong password: five failures lock the account"
for i in 1 2 3 4 5; do
  fail_with_pw 'Wrong-pass-0' hsm-user login --username app_crypto --role crypto-user --password-stdin --session "$work/cu.session" || true
done
run hsm-user list
echo "(the right password is refused too while the account is locked)"
fail_with_pw 'Crypto-pass-1' hsm-user login --username app_crypto --role crypto-user --password-stdin --session "$work/cu.session"

step "5. An admin resets the password, which unlocks the account"
with_pw 'Crypto-pass-2' hsm-user change-password --username app_crypto --role crypto-user --password-stdin
run hsm-user list
with_pw 'Crypto-pass-2' hsm-user login --username app_crypto --role crypto-user --password-stdin --session "$work/cu.session"
run hsm-user logout --session "$work/cu.session"

step "6. Quorum: every admin registers an RSA-2048 key; user management then needs 2 approvals"
for who in admin officer2 officer3; do
  pw='Admin-pass-1'; [ "$who" = officer2 ] && pw='Officer-pass-2'; [ "$who" = officer3 ] && pw='Officer-pass-3'
  sess="$work/$who.session"
  [ "$who" = admin ] && sess="$work/.hsm-session"
  [ "$who" = admin ] || with_pw "$pw" hsm-user login --username "$who" --role admin --password-stdin --session "$sess"
  run hsm-sign keygen --private-key "$work/$who.key" --public-key "$work/$who.pub"
  run hsm-quorum generate --session "$sess" --service registration --token "$work/$who.reg"
  run hsm-sign sign --key "$work/$who.key" --username "$who" --out "$work/$who.reg" "$work/$who.reg"
  run hsm-user change-quorum register --session "$sess" --public-key "$work/$who.pub" --signed-token "$work/$who.reg"
done
run hsm-quorum set-value --service user --value 2
run hsm-user list
echo "(without an approved token, creating a user is refused)"
fail_with_pw 'Auditor-pass-1' hsm-user create --username auditor --role crypto-user --password-stdin

step "7. A token signed offline: officer2 with hsm-sign, officer3 with plain openssl (seed 001's steps)"
run hsm-quorum generate --service user --token "$work/admin.token"
run hsm-sign sign --key "$work/officer2.key" --username officer2 --out "$work/officer2.token" "$work/admin.token"
if command -v openssl >/dev/null; then
  printf '$ %s\n' "base64 -d | openssl pkeyutl -sign -pkeyopt digest:sha256 | base64 -w0  (and edit the JSON)"
  sed -n 's/.*"token": "\(.*\)".*/\1/p' "$work/admin.token" | base64 -d > "$work/admin.bin"
  openssl pkeyutl -sign -inkey "$work/officer3.key" -pkeyopt digest:sha256 -keyform PEM -in "$work/admin.bin" -out "$work/admin.sig.bin"
  sig=$(base64 -w0 "$work/admin.sig.bin")
  sed "s|\"signatures\": \[\]|\"signatures\": [{\"username\": \"officer3\", \"signature\": \"$sig\"}]|" "$work/admin.token" > "$work/officer3.token"
else
  run hsm-sign sign --key "$work/officer3.key" --username officer3 --out "$work/officer3.token" "$work/admin.token"
fi
run hsm-sign merge --out "$work/approved.token" "$work/officer2.token" "$work/officer3.token"
run hsm-quorum list
with_pw 'Auditor-pass-1' hsm-user create --username auditor --role crypto-user --password-stdin --approval "$work/approved.token"
echo "(the same token again: refused, a token approves one operation)"
fail_with_pw 'Auditor-pass-2' hsm-user create --username auditor2 --role crypto-user --password-stdin --approval "$work/approved.token"

step "8. A third HSM joins the cluster: a clone. This client's config does not know it"
newhsm=$(hsm-sim add-hsm)
printf '$ newhsm=$(hsm-sim add-hsm)   # %s\n' "$newhsm"
run hsm-sim list
run hsm-sync config --check || true

step "9. The seed's drift: a create that reaches two of three HSMs"
run hsm-quorum generate --service user --token "$work/t2.token" --allow-partial || true
run hsm-sign sign --key "$work/officer2.key" --username officer2 --out "$work/t2.token" "$work/t2.token"
run hsm-sign sign --key "$work/officer3.key" --username officer3 --out "$work/t2.token" "$work/t2.token"
with_pw 'Newest-pass-1' hsm-user create --username newest_user --role crypto-user --password-stdin --approval "$work/t2.token" --allow-partial || true
run hsm-user list

step "10. hsm-sync finds it, explains it, prints the CMU repair, and repairs it without the password"
run hsm-sync diff || echo "(exit $? : drift found)"
run hsm-sync plan --dialect cmu
run hsm-sync apply
run hsm-sync diff
run hsm-user list

step "11. The same cluster through cloudhsm-cli: a script written for a real cluster runs unchanged"
printf '$ export CLOUDHSM_ROLE=admin CLOUDHSM_PIN=admin:********\n'
export CLOUDHSM_ROLE=admin CLOUDHSM_PIN=admin:Admin-pass-1
printf '%s\n' '$ cloudhsm-cli user list | jq -e '"'"'.data.users[] | select(.username == "kmsuser")'"'"' || cloudhsm-cli user create --username kmsuser …'
if ! cloudhsm-cli user list | jq -e '.data.users[] | select(.username == "kmsuser")' >/dev/null 2>&1; then
  cloudhsm-cli user create --username kmsuser --role crypto-user --password Kmsuser-pass-1 || echo "(refused: the user service needs a quorum token, as on a real cluster)"
fi
run cloudhsm-cli quorum token-sign list-quorum-values
unset CLOUDHSM_ROLE CLOUDHSM_PIN

step "12. A crypto user's keys: generated in every HSM (masked, never plaintext), used to sign, in sync"
printf '$ export CLOUDHSM_ROLE=crypto-user CLOUDHSM_PIN=app_crypto:********\n'
export CLOUDHSM_ROLE=crypto-user CLOUDHSM_PIN=app_crypto:Crypto-pass-2
gen=(cloudhsm-cli key generate-asymmetric-pair ec --public-label demo-pub --private-label demo-key --curve secp256r1 --private-attributes sign=true --public-attributes verify=true)
printf '$ %s | jq .error_code\n' "${gen[*]}"
"${gen[@]}" | sed -n 's/^  "error_code": \(.*\),$/\1/p'
run cloudhsm-cli key list --filter attr.label=demo-key
printf 'hello' > "$work/msg.bin"
run cloudhsm-cli crypto sign ecdsa --key-filter attr.label=demo-key --hash-function sha256 --data-path "$work/msg.bin"
unset CLOUDHSM_ROLE CLOUDHSM_PIN
run hsm-sync diff
step "13. A KMS custom key store on the cluster: kmsuser, the trust anchor, a doctor, connect, a KMS key"
export HSM_KMS_STATE="$work/kms"
echo "(the admin's session predates the third HSM: log in again to reach it)"
run hsm-user logout
with_pw 'Admin-pass-1' hsm-user login --username admin --role admin --password-stdin
run hsm-quorum generate --service user --token "$work/t3.token"
run hsm-sign sign --key "$work/officer2.key" --username officer2 --out "$work/t3.token" "$work/t3.token"
run hsm-sign sign --key "$work/officer3.key" --username officer3 --out "$work/t3.token" "$work/t3.token"
with_pw 'Kmsuser-pass-1' hsm-user create --username kmsuser --role crypto-user --password-stdin --approval "$work/t3.token"
printf '$ hsm-sim trust-anchor > customerCA.crt\n'
hsm-sim trust-anchor > "$work/customerCA.crt"
cluster=$(hsm-sim -o json list | jq -r '.data["cluster-id"]')
printf '$ hsm-kms create-custom-key-store --custom-key-store-name DemoKeyStore --cloud-hsm-cluster-id %s --trust-anchor-certificate file://customerCA.crt --key-store-password ********\n' "$cluster"
hsm-kms create-custom-key-store --custom-key-store-name DemoKeyStore --cloud-hsm-cluster-id "$cluster" \
  --trust-anchor-certificate "file://$work/customerCA.crt" --key-store-password Kmsuser-pass-1 | tee "$work/cks.json"
cks=$(jq -r .CustomKeyStoreId "$work/cks.json")
run hsm-kms doctor --custom-key-store-id "$cks" --output table
run hsm-kms connect-custom-key-store --custom-key-store-id "$cks"
run hsm-kms describe-custom-key-stores --custom-key-store-id "$cks" --query 'CustomKeyStores[0].ConnectionState' --output text
key=$(hsm-kms create-key --origin AWS_CLOUDHSM --custom-key-store-id "$cks" --description 'demo key' --query KeyMetadata.KeyId --output text)
printf '$ key=$(hsm-kms create-key --origin AWS_CLOUDHSM --custom-key-store-id %s --query KeyMetadata.KeyId --output text)   # %s\n' "$cks" "$key"
printf 'attack at dawn' > "$work/plain.txt"
printf '$ hsm-kms encrypt --key-id "$key" --plaintext fileb://plain.txt --query CiphertextBlob --output text | base64 -d > secret.enc\n'
hsm-kms encrypt --key-id "$key" --plaintext "fileb://$work/plain.txt" --query CiphertextBlob --output text | base64 -d > "$work/secret.enc"
printf '$ hsm-kms decrypt --ciphertext-blob fileb://secret.enc --query Plaintext --output text | base64 -d\n'
hsm-kms decrypt --ciphertext-blob "fileb://$work/secret.enc" --query Plaintext --output text | base64 -d; echo
echo "(KMS rotated kmsuser's password at connect and stays logged in as kmsuser: an admin cannot delete it now)"
run hsm-kms disconnect-custom-key-store --custom-key-store-id "$cks"
run hsm-kms describe-key --key-id "$key" --query KeyMetadata.KeyState --output text
run hsm-kms encrypt --key-id "$key" --plaintext "fileb://$work/plain.txt" || echo "(exit $?: the key is unavailable while the store is disconnected)"
step "14. A second role profile: a simulated Thales Luna 7 cluster (LunaSH users, custom roles, partition roles)"
luna="$work/luna"; mkdir -p "$luna"
run hsm-sim init --profile luna -c "$luna/cluster.yaml" --state "$luna/state" --hsms 2 --seed 7
export HSM_CONFIG="$luna/cluster.yaml" LUNASH_USER=admin LUNASH_PASSWORD=PASSWORD
echo "(the predefined admin's first password must be changed before anything else)"
with_pw 'Luna-Admin-1' lunash my password set -password-stdin
export LUNASH_PASSWORD=Luna-Admin-1
with_pw 'James-pass-1' lunash user add -username james -password-stdin
run lunash user role add -username james -role operator
printf 'hsm show\nuser List\naudit init\n' > "$work/readers.role"
run lunash user role import -file "$work/readers.role" -role readers || echo "(refused whole, naming each bad line: the wrong case and the audit role's command)"
run lunash user list
with_pw 'So-pass-12' lunash hsm init -label demoHSM -password-stdin
with_pw 'So-pass-12' lunacm role login -name so -password-stdin
with_pw 'Po-pass-123' lunacm partition init -label par1 -password-stdin
run lunacm role logout
with_pw 'Po-pass-123' lunacm role login -name po -partition par1 -password-stdin
with_pw 'Co-pass-123' lunacm role init -name co -password-stdin
run lunacm role list
run lunacm role logout
unset LUNASH_USER LUNASH_PASSWORD
export HSM_CONFIG="$work/cluster.yaml"
printf '\nThe story is done: the CloudHSM cluster is in sync, its client config lists every HSM, and a Luna cluster runs beside it.\n'
