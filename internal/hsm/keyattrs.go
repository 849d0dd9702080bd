package hsm

import (
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hsmkit/hsmkit/internal/state"
	"github.com/hsmkit/hsmkit/internal/syncdiff"
)

// A key's attributes (docs/design.md, "Keys"): their defaults, which may
// be given at creation, which may be changed after, and how each is shown
// and matched by a filter. One table, read by generate, set-attribute,
// list and the filters alike.

// KeyAttr is one attribute as cloudhsm-cli shows it: Value is a string, a
// bool or a number.
type KeyAttr struct {
	Name  string
	Value any
}

// attrRule says what may be done with a boolean attribute.
type attrRule struct {
	atCreation bool // may be given with --attributes
	// change: "yes", "to-false" (only true→false), "to-true" (only
	// false→true: it then stays), "admin" (trusted), "" (never).
	change string
}

var attrRules = map[string]attrRule{
	"encrypt": {true, "yes"}, "decrypt": {true, "yes"}, "derive": {true, "yes"},
	"destroyable": {true, "yes"}, "sign": {true, "yes"}, "verify": {true, "yes"},
	"wrap": {true, "yes"}, "unwrap": {true, "yes"},
	"extractable": {true, "to-false"}, "modifiable": {true, "to-false"},
	"private": {true, ""}, "sensitive": {true, ""},
	"wrap-with-trusted": {true, "to-true"}, "trusted": {false, "admin"},
	"token": {false, ""}, "always-sensitive": {false, ""}, "local": {false, ""},
	"never-extractable": {false, ""},
}

// defaultFlags is a new key's boolean attributes, by class: CloudHSM's
// defaults (an AES key signs and verifies; a key pair does nothing until
// told to).
func defaultFlags(k *state.Key) {
	for _, a := range []string{"destroyable", "extractable", "local", "modifiable", "private", "token"} {
		k.Set(a, true)
	}
	switch k.Class {
	case state.ClassSecret:
		k.Set("sign", true)
		k.Set("verify", true)
		k.Set("sensitive", true)
	case state.ClassPrivate:
		k.Set("sensitive", true)
	}
}

// applyAttrs sets the NAME=VALUE attributes given at creation, then the
// ones derived from them.
func applyAttrs(k *state.Key, given []string) error {
	for _, kv := range given {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("attribute %q: want NAME=VALUE", kv)
		}
		switch name {
		case "label":
			if err := checkLabel(val); err != nil {
				return err
			}
			k.Label = val
			continue
		case "id":
			if err := checkLabel(val); err != nil {
				return fmt.Errorf("id: %v", err)
			}
			k.ID = val
			continue
		}
		rule, known := attrRules[name]
		if !known {
			return fmt.Errorf("attribute %q is not a key attribute that can be given at creation", name)
		}
		if !rule.atCreation {
			return fmt.Errorf("attribute %s cannot be set at key creation", name)
		}
		b, err := parseBool(name, val)
		if err != nil {
			return err
		}
		if name == "sensitive" && k.Class == state.ClassPublic {
			return fmt.Errorf("attribute sensitive cannot be set on a public key")
		}
		k.Set(name, b)
	}
	k.Set("always-sensitive", k.Has("sensitive"))
	k.Set("never-extractable", !k.Has("extractable"))
	return nil
}

func parseBool(name, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("attribute %s: value %q is not true or false", name, v)
}

// checkLabel bounds a label: 127 characters since SDK 5.11.
func checkLabel(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 127 {
		return fmt.Errorf("label %q: at most 127 characters of UTF-8", s)
	}
	return nil
}

// setAttr changes one attribute of k as set-attribute does; admin says
// whether an admin asks (who may set trusted and nothing else).
func setAttr(k *state.Key, name, val string, admin bool) error {
	refuse := func() error {
		//lint:ignore ST1005 cloudhsm-cli's exact message
		return fmt.Errorf("Attribute %s cannot be set to the value %s by the user for this operation", name, val)
	}
	if admin != (name == "trusted") {
		return refuse()
	}
	if !k.Has("modifiable") && name != "trusted" {
		return fmt.Errorf("key %s is not modifiable", RefString(k.Ref))
	}
	if name == "label" {
		if err := checkLabel(val); err != nil {
			return err
		}
		k.Label = val
		return nil
	}
	rule, known := attrRules[name]
	if !known {
		return fmt.Errorf("attribute %q is not a key attribute", name)
	}
	b, err := parseBool(name, val)
	if err != nil {
		return err
	}
	// A one-way attribute refuses its other value even when it has it
	// already, as CloudHSM does (extractable=true on an extractable key).
	switch {
	case rule.change == "yes", rule.change == "admin":
	case rule.change == "to-false" && !b:
	case rule.change == "to-true" && b:
	default:
		return refuse()
	}
	k.Set(name, b)
	return nil
}

// checkValue is CloudHSM's check value: for a symmetric key the first 3
// bytes of its encryption of a zero block, for a key pair the first 3
// bytes of the SHA-1 of the public key (its DER SubjectPublicKeyInfo);
// generic secrets (HMAC keys) have none.
func checkValue(k *state.Key, secret []byte) []byte {
	switch k.Type {
	case state.TypeAES:
		b, err := aes.NewCipher(secret)
		if err != nil {
			return nil
		}
		var out [16]byte
		b.Encrypt(out[:], make([]byte, 16))
		return out[:3]
	case state.TypeRSA, state.TypeEC:
		s := sha1.Sum(k.Public)
		return s[:3]
	}
	return nil
}

// RefString is a key reference as cloudhsm-cli shows it.
func RefString(ref uint64) string { return syncdiff.KeyRefString(ref) }

// ParseRef reads a key reference: 0x and 1 to 16 hex digits.
func ParseRef(s string) (uint64, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || h == "" || len(h) > 16 {
		return 0, fmt.Errorf("key reference %q: want 0x and up to 16 hex digits", s)
	}
	v, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("key reference %q: want 0x and up to 16 hex digits", s)
	}
	return v, nil
}

// recordAttrNames are the attributes a key record holds as they are
// shown, in the order cloudhsm-cli prints them, before typeAttrs.
var recordAttrNames = append([]string{"key-type", "label", "id", "check-value", "class"}, state.BoolAttrs...)

// recordAttr is one attribute the record holds, without decoding its
// public key: what a filter reads of each of thousands of keys.
func recordAttr(k *state.Key, name string) (any, bool) {
	switch name {
	case "key-type":
		return k.Type, true
	case "label":
		return k.Label, true
	case "id":
		return k.ID, true
	case "check-value":
		return fmt.Sprintf("0x%x", k.Check), k.Check != nil
	case "class":
		return k.Class, true
	}
	if slices.Contains(state.BoolAttrs, name) {
		return k.Has(name), true
	}
	return nil, false
}

// KeyAttrs lists k's attributes in the order cloudhsm-cli prints them.
func KeyAttrs(k *state.Key) []KeyAttr {
	var out []KeyAttr
	for _, n := range recordAttrNames {
		if v, ok := recordAttr(k, n); ok {
			out = append(out, KeyAttr{n, v})
		}
	}
	return append(out, typeAttrs(k)...)
}

// typeAttrs are the attributes of k's type, read from its public key.
func typeAttrs(k *state.Key) []KeyAttr {
	switch k.Type {
	case state.TypeAES, state.TypeGenericSecret:
		return []KeyAttr{{"key-length-bytes", k.Length}}
	case state.TypeRSA:
		if pub, err := x509.ParsePKIXPublicKey(k.Public); err == nil {
			if r, ok := pub.(*rsa.PublicKey); ok {
				return []KeyAttr{{"public-exponent", fmt.Sprintf("0x%06x", r.E)},
					{"modulus", "0x" + r.N.Text(16)},
					{"modulus-size-bits", r.N.BitLen()}}
			}
		}
	case state.TypeEC:
		if pub, err := x509.ParsePKIXPublicKey(k.Public); err == nil {
			if e, ok := pub.(*ecdsa.PublicKey); ok {
				return []KeyAttr{{"ec-point", "0x" + ecPointHex(e)}, {"curve", k.Curve}}
			}
		}
	}
	return nil
}

// ecPointHex is the uncompressed point (04 || X || Y).
func ecPointHex(e *ecdsa.PublicKey) string {
	pk, err := e.ECDH()
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", pk.Bytes())
}

// attrText is an attribute's value as a filter compares it.
func attrText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	}
	return fmt.Sprint(v)
}

// KeyFilter selects keys: by reference, and attribute values.
type KeyFilter struct {
	Ref   *uint64
	Attrs []KeyAttr // Value is the text to match
}

// maxFilterTerms bounds a filter: no attribute is worth naming twice.
const maxFilterTerms = 64

// ParseKeyFilter reads cloudhsm-cli's --filter terms: key-reference=0x…
// and attr.NAME=VALUE (VALUE may be quoted). Every term must hold.
func ParseKeyFilter(terms []string) (KeyFilter, error) {
	var f KeyFilter
	if len(terms) > maxFilterTerms {
		return f, fmt.Errorf("--filter: at most %d terms", maxFilterTerms)
	}
	for _, t := range terms {
		name, val, ok := strings.Cut(t, "=")
		if !ok {
			return f, fmt.Errorf("--filter %q: want key-reference=0x… or attr.NAME=VALUE", t)
		}
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		if name == "key-reference" {
			ref, err := ParseRef(val)
			if err != nil {
				return f, fmt.Errorf("--filter: %v", err)
			}
			if f.Ref != nil && *f.Ref != ref {
				return f, fmt.Errorf("--filter: two different key references")
			}
			f.Ref = &ref
			continue
		}
		attr, ok := strings.CutPrefix(name, "attr.")
		if !ok || !knownAttr(attr) {
			return f, fmt.Errorf("--filter %q: want key-reference=0x… or attr.NAME=VALUE with a key attribute NAME", t)
		}
		f.Attrs = append(f.Attrs, KeyAttr{Name: attr, Value: val})
	}
	return f, nil
}

func knownAttr(name string) bool {
	switch name {
	case "key-type", "label", "id", "check-value", "class", "key-length-bytes", "public-exponent", "modulus", "modulus-size-bits", "ec-point", "curve":
		return true
	}
	return slices.Contains(state.BoolAttrs, name)
}

// Match says whether k passes the filter.
func (f KeyFilter) Match(k *state.Key) bool {
	if f.Ref != nil && *f.Ref != k.Ref {
		return false
	}
	if len(f.Attrs) == 0 {
		return true
	}
	var typed []KeyAttr // parsed only when a term needs it
	for _, want := range f.Attrs {
		v, ok := recordAttr(k, want.Name)
		if !ok {
			if typed == nil {
				typed = typeAttrs(k)
			}
			i := slices.IndexFunc(typed, func(a KeyAttr) bool { return a.Name == want.Name })
			if i < 0 {
				return false
			}
			v = typed[i].Value
		}
		if attrText(v) != want.Value.(string) {
			return false
		}
	}
	return true
}
