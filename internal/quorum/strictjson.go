package quorum

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// FieldError names the file and the JSON field a problem is in, as
// "admin.token: signatures[1].signature: illegal base64 data at input byte 4".
type FieldError struct {
	File  string
	Field string // empty for the file as a whole
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Err.Error()
	}
	return e.File + ": " + e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// object decodes one JSON object strictly. encoding/json alone would accept
// keys in any case, duplicated keys (the last wins) and unknown keys; a token
// file is signed material, so each must be refused rather than guessed at.
func object(data []byte, required ...string) (map[string]json.RawMessage, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}), bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		return nil, errors.New("UTF-16 text (byte-order mark): save the file as UTF-8, as hsm-quorum wrote it")
	case bytes.HasPrefix(data, []byte{0xef, 0xbb, 0xbf}):
		return nil, errors.New("starts with a UTF-8 byte-order mark: save the file as UTF-8 without BOM, as hsm-quorum wrote it")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object, got %s", describe(tok))
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err)
		}
		key := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %w", key, jsonErr(err))
		}
		if !slices.Contains(required, key) {
			return nil, fmt.Errorf("unknown field %q (want %s)", key, strings.Join(required, ", "))
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("field %q appears twice", key)
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	for _, k := range required {
		if _, ok := fields[k]; !ok {
			return nil, fmt.Errorf("missing field %q", k)
		}
	}
	return fields, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return string(v)
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func jsonErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("unexpected end of JSON")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// array splits a JSON array into its elements.
func array(raw json.RawMessage) ([]json.RawMessage, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || len(raw) == 0 || bytes.TrimSpace(raw)[0] != '[' {
		return nil, errors.New("want a JSON array")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, jsonErr(err)
	}
	return elems, nil
}

func str(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", errors.New("want a JSON string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", jsonErr(err)
	}
	return s, nil
}

// b64 decodes standard padded base64, refusing non-canonical encodings so a
// file has exactly one spelling.
func b64(raw json.RawMessage) ([]byte, error) {
	s, err := str(raw)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// marshal writes v as cloudhsm-cli does: indented by two spaces, with a
// final newline.
func marshal(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only plain strings and slices are marshalled
	}
	return append(b, '\n')
}
