package policy

import "fmt"

// The key rows of the permission table (docs/design.md, "Keys"): the
// table above says which roles may manage and use keys at all; KeyRights
// says which key a crypto user may act on, by its relation to the key.
// CloudHSM's rules: only the owner shares, unshares, deletes, wraps or
// changes attributes; shared users only use; every crypto user uses (and
// sees) public keys, which are never shared.

// KeyRelation is how a crypto user stands to one key.
type KeyRelation string

const (
	KeyOwner  KeyRelation = "owner"
	KeyShared KeyRelation = "shared user"
	KeyOther  KeyRelation = "other crypto user"
)

// KeyAction is what is done to one key.
type KeyAction string

const (
	KeySee          KeyAction = "see"
	KeyUse          KeyAction = "use"
	KeyShare        KeyAction = "share"
	KeyUnshare      KeyAction = "unshare"
	KeyDelete       KeyAction = "delete"
	KeyWrap         KeyAction = "wrap"
	KeySetAttribute KeyAction = "change the attributes of"
)

// KeyRight is one row: who may, for a secret or private key and for a
// public key.
type KeyRight struct {
	Action KeyAction
	Allow  []KeyRelation
	// Public are the relations allowed on a public key; PublicNever
	// refuses the action on a public key whoever asks.
	Public      []KeyRelation
	PublicNever string
}

var (
	ownerOnly = []KeyRelation{KeyOwner}
	users     = []KeyRelation{KeyOwner, KeyShared}
	everyone  = []KeyRelation{KeyOwner, KeyShared, KeyOther}
)

// KeyRights is CloudHSM's key table.
var KeyRights = []KeyRight{
	{Action: KeySee, Allow: users, Public: everyone},
	{Action: KeyUse, Allow: users, Public: everyone},
	{Action: KeyShare, Allow: ownerOnly, PublicNever: "public keys are usable by every crypto user and are never shared"},
	{Action: KeyUnshare, Allow: ownerOnly, PublicNever: "public keys are usable by every crypto user and are never shared"},
	{Action: KeyDelete, Allow: ownerOnly, Public: ownerOnly},
	{Action: KeyWrap, Allow: ownerOnly, Public: ownerOnly},
	{Action: KeySetAttribute, Allow: ownerOnly, Public: ownerOnly},
}

// KeyDenied refuses an action on a key.
type KeyDenied struct {
	Action   KeyAction
	Relation KeyRelation
	Ref      string
	Why      string
}

func (e *KeyDenied) Error() string {
	if e.Why != "" {
		return fmt.Sprintf("permission denied: cannot %s key %s: %s", e.Action, e.Ref, e.Why)
	}
	return fmt.Sprintf("permission denied: a %s may not %s key %s; only its owner may", e.Relation, e.Action, e.Ref)
}

// CheckKey asks the key table whether rel may do action to a key (public
// says whether it is a public key); ref names the key in the refusal.
func CheckKey(action KeyAction, rel KeyRelation, public bool, ref string) error {
	for _, r := range KeyRights {
		if r.Action != action {
			continue
		}
		allow := r.Allow
		if public {
			if r.PublicNever != "" {
				return &KeyDenied{Action: action, Relation: rel, Ref: ref, Why: r.PublicNever}
			}
			allow = r.Public
		}
		for _, a := range allow {
			if a == rel {
				return nil
			}
		}
		return &KeyDenied{Action: action, Relation: rel, Ref: ref}
	}
	return &KeyDenied{Action: action, Relation: rel, Ref: ref, Why: "no such key action"}
}
