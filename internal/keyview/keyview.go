// Package keyview renders keys as cloudhsm-cli prints them in its JSON
// (docs/design.md, "Keys"): the key object (key-reference, key-info,
// attributes, in cloudhsm-cli's order), the outputs of generate, list
// with its paging, wrap and sign. Front ends (hsm-key, cloudhsm-cli) add
// only their flags.
package keyview

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/hsmkit/hsmkit/internal/hsm"
)

// Field is one member of an ordered JSON object.
type Field struct {
	Name  string
	Value any
}

// Object is a JSON object that keeps its members' order.
type Object []Field

// MarshalJSON writes the members in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Name)
		if err != nil {
			return nil, err
		}
		v, err := marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal writes v without HTML escaping, as the envelope does.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// Attributes are a key's attributes, in cloudhsm-cli's order.
func Attributes(ki *hsm.KeyInfo) Object {
	var o Object
	for _, a := range hsm.KeyAttrs(&ki.Key) {
		o = append(o, Field{a.Name, a.Value})
	}
	return o
}

type coverage struct {
	Username string `json:"username"`
	Coverage string `json:"key-coverage"`
}

func coverages(us []hsm.UserCoverage) []coverage {
	out := make([]coverage, 0, len(us))
	for _, u := range us {
		out = append(out, coverage{u.Username, u.Coverage})
	}
	return out
}

// Info is a key's key-info block.
func Info(ki *hsm.KeyInfo) Object {
	return Object{
		{"key-owners", coverages(ki.Owners)},
		{"shared-users", coverages(ki.Shared)},
		{"key-quorum-values", Object{{"manage-key-quorum-value", ki.Key.ManageQuorum}, {"use-key-quorum-value", ki.Key.UseQuorum}}},
		{"cluster-coverage", ki.Coverage},
	}
}

// Key is the whole key object: key-reference, key-info, attributes.
func Key(ki *hsm.KeyInfo) Object {
	return Object{{"key-reference", hsm.RefString(ki.Key.Ref)}, {"key-info", Info(ki)}, {"attributes", Attributes(ki)}}
}

// Brief is a key as key list shows it without --verbose.
func Brief(ki *hsm.KeyInfo) Object {
	return Object{{"key-reference", hsm.RefString(ki.Key.Ref)}, {"attributes", Object{{"label", ki.Key.Label}}}}
}

// Generated is the data of a generate, import or unwrap: {"key": …} for
// one key, {"public_key": …, "private_key": …} for a pair.
func Generated(keys []hsm.KeyInfo) Object {
	if len(keys) == 2 {
		return Object{{"public_key", Key(&keys[0])}, {"private_key", Key(&keys[1])}}
	}
	if len(keys) == 1 {
		return Object{{"key", Key(&keys[0])}}
	}
	return Object{}
}

// Page is --max-items and --starting-token: the token is the offset of
// the first key shown, as cloudhsm-cli's is.
type Page struct {
	MaxItems int
	Start    int
}

// DefaultMaxItems is key list's page size when none is given.
const DefaultMaxItems = 10

// ParsePage reads --max-items (0: the default) and --starting-token ("": the start).
func ParsePage(maxItems int, token string) (Page, error) {
	p := Page{MaxItems: maxItems, Start: 0}
	if p.MaxItems == 0 {
		p.MaxItems = DefaultMaxItems
	}
	if p.MaxItems < 1 {
		return p, fmt.Errorf("--max-items %d: want a positive number", maxItems)
	}
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || strconv.Itoa(n) != token {
			return p, fmt.Errorf("--starting-token %q: not a token key list gave", token)
		}
		p.Start = n
	}
	return p, nil
}

// Bounds are the indexes [start, end) of the page within n keys.
func (p Page) Bounds(n int) (start, end int) {
	start = min(p.Start, n)
	return start, min(start+p.MaxItems, n)
}

// List is key list's data: the page of matched keys, the counts, and
// next_token when more follow.
func List(keys []hsm.KeyInfo, verbose bool, p Page) Object {
	start, end := p.Bounds(len(keys))
	matched := make([]Object, 0, end-start)
	for i := start; i < end; i++ {
		if verbose {
			matched = append(matched, Key(&keys[i]))
		} else {
			matched = append(matched, Brief(&keys[i]))
		}
	}
	o := Object{{"matched_keys", matched}, {"total_key_count", len(keys)}, {"returned_key_count", len(matched)}}
	if end < len(keys) {
		o = append(o, Field{"next_token", strconv.Itoa(end)})
	}
	return o
}

// Message is the data of a command that reports success in words.
func Message(s string) Object { return Object{{"message", s}} }

// The messages cloudhsm-cli prints.
const (
	MsgShared    = "Key shared successfully"
	MsgUnshared  = "Key unshared successfully"
	MsgDeleted   = "Key deleted successfully"
	MsgAttribute = "Attribute set successfully"
	MsgVerified  = "Signature verified successfully"
)

// Signature is crypto sign's data.
func Signature(ref string, sig []byte) Object {
	return Object{{"key-reference", ref}, {"signature", base64.StdEncoding.EncodeToString(sig)}}
}

// Wrapped is key wrap's data; the IV only for AES-GCM.
func Wrapped(w *hsm.Wrapped) Object {
	o := Object{{"payload_key_reference", w.PayloadRef}, {"wrapping_key_reference", w.WrappingRef}}
	if w.IV != nil {
		o = append(o, Field{"iv", fmt.Sprintf("0x%x", w.IV)})
	}
	return append(o, Field{"wrapped_key_data", base64.StdEncoding.EncodeToString(w.Data)})
}
