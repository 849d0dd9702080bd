package awscli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func files(m map[string]string) ReadFile {
	return func(p string) ([]byte, error) {
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("no such file")
	}
}

func TestBlob(t *testing.T) {
	read := files(map[string]string{"raw.bin": "\x00\x01hi", "b64.txt": "aGk=\n"})
	for _, c := range []struct {
		value, format, want, err string
	}{
		{"aGk=", "", "hi", ""},
		{"hi", "raw-in-base64-out", "hi", ""},
		{"fileb://raw.bin", "", "\x00\x01hi", ""},
		{"fileb://raw.bin", "raw-in-base64-out", "\x00\x01hi", ""},
		{"file://b64.txt", "", "hi", ""},
		{"not base64!", "", "", "Invalid base64"},
		{"fileb://missing", "", "", "Unable to load paramfile missing"},
		{"fileb://", "", "", "no file name"},
		{"aGk=", "hex", "", "--cli-binary-format"},
	} {
		got, err := Blob("plaintext", c.value, c.format, read)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q %q: error %v, want %q", c.value, c.format, err, c.err)
		case c.err == "" && (err != nil || string(got) != c.want):
			t.Errorf("%q %q: %q, %v; want %q", c.value, c.format, got, err, c.want)
		case err != nil && !IsParam(err):
			t.Errorf("%q: %v is not a parameter error (exit 252)", c.value, err)
		}
	}
}

func TestMap(t *testing.T) {
	read := files(map[string]string{"ctx.json": `{"a":"1"}`})
	for _, c := range []struct {
		value string
		want  map[string]string
		err   string
	}{
		{"", nil, ""},
		{"Purpose=test", map[string]string{"Purpose": "test"}, ""},
		{"a=1,b=2", map[string]string{"a": "1", "b": "2"}, ""},
		{"a=x=y", map[string]string{"a": "x=y"}, ""},
		{`{"a":"1","b":"2"}`, map[string]string{"a": "1", "b": "2"}, ""},
		{"file://ctx.json", map[string]string{"a": "1"}, ""},
		{"novalue", nil, "Expected: '='"},
		{"=v", nil, "Expected: '='"},
		{"a=1,a=2", nil, "given twice"},
		{`{"a":1}`, nil, "Invalid JSON"},
	} {
		got, err := Map("encryption-context", c.value, read)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.value, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%q: %v, %v; want %v", c.value, got, err, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%q: %v, want %v", c.value, got, c.want)
			}
		}
	}
}

func TestRender(t *testing.T) {
	type entry struct {
		KeyID  string `json:"KeyId"`
		KeyArn string `json:"KeyArn"`
	}
	v := struct {
		Keys    []entry `json:"Keys"`
		Blob    []byte  `json:"CiphertextBlob"`
		Enabled bool    `json:"Enabled"`
	}{[]entry{{"k1", "arn1"}, {"k2", "arn2"}}, []byte("hi"), true}
	for _, c := range []struct{ output, query, want string }{
		{"", "", "{\n    \"Keys\": [\n        {\n            \"KeyId\": \"k1\",\n            \"KeyArn\": \"arn1\"\n        },\n        {\n            \"KeyId\": \"k2\",\n            \"KeyArn\": \"arn2\"\n        }\n    ],\n    \"CiphertextBlob\": \"aGk=\",\n    \"Enabled\": true\n}\n"},
		{"text", "CiphertextBlob", "aGk=\n"},
		{"text", "Keys[*].KeyId", "k1\tk2\n"},
		{"text", "Keys[1].KeyArn", "arn2\n"},
		{"text", "Keys[-1].KeyId", "k2\n"},
		{"json", "Keys[0].KeyId", "\"k1\"\n"},
		{"text", "Enabled", "True\n"},
		{"text", "Missing", "None\n"},
		{"text", "", "aGk=\tTrue\nKEYS\tarn1\tk1\nKEYS\tarn2\tk2\n"},
	} {
		var b bytes.Buffer
		if err := Render(&b, v, c.output, c.query); err != nil {
			t.Errorf("%s %q: %v", c.output, c.query, err)
			continue
		}
		if b.String() != c.want {
			t.Errorf("%s %q:\n%q\nwant\n%q", c.output, c.query, b.String(), c.want)
		}
	}
	for _, q := range []string{"Keys[", "Keys[x]", "a|b", "Keys[?KeyId=='k1']", "length(Keys)", "Keys]"} {
		if err := Render(&bytes.Buffer{}, v, "json", q); !IsParam(err) {
			t.Errorf("query %q: %v, want a parameter error", q, err)
		}
	}
	if err := Render(&bytes.Buffer{}, v, "yaml", ""); !IsParam(err) {
		t.Errorf("--output yaml: %v, want a parameter error", err)
	}
}

func FuzzQuery(f *testing.F) {
	for _, s := range []string{"Keys[*].KeyId", "a.b[0][1]", "CustomKeyStores[0].ConnectionState", "[", "a..b", "x[-1]"} {
		f.Add(s)
	}
	doc := map[string]any{"Keys": []any{map[string]any{"KeyId": "k"}}, "a": map[string]any{"b": []any{[]any{"x", "y"}}}}
	f.Fuzz(func(t *testing.T, q string) {
		_, _ = Query(doc, q)
	})
}

func FuzzBlobAndMap(f *testing.F) {
	for _, s := range []string{"aGk=", "fileb://x", "file://x", "a=b,c=d", `{"a":"b"}`, "=", ""} {
		f.Add(s, false)
	}
	read := files(map[string]string{"x": "aGk="})
	f.Fuzz(func(t *testing.T, s string, raw bool) {
		format := ""
		if raw {
			format = "raw-in-base64-out"
		}
		if _, err := Blob("p", s, format, read); err != nil && !IsParam(err) {
			t.Fatalf("Blob(%q): %v is not a parameter error", s, err)
		}
		m, err := Map("p", s, read)
		if err != nil && !IsParam(err) {
			t.Fatalf("Map(%q): %v is not a parameter error", s, err)
		}
		if err == nil && strings.HasPrefix(s, "{") == false {
			for k := range m {
				if k == "" {
					t.Fatalf("Map(%q) gave an empty key", s)
				}
			}
		}
	})
}

// A stored name or description is printed without terminal controls in
// both output formats; a PEM's newlines stay in text.
func TestRenderEscapes(t *testing.T) {
	v := map[string]any{"Name": "n\x1b[2J\u202eq\x7f", "Pem": "-----BEGIN X-----\nAAAA\n-----END X-----"}
	for _, tc := range []struct{ output, query, want string }{
		{"text", "Name", `n\x1b[2J\u202eq\x7f` + "\n"},
		{"text", "Pem", "-----BEGIN X-----\nAAAA\n-----END X-----\n"},
		{"json", "Name", `"n\u001b[2J\u202eq\u007f"` + "\n"},
	} {
		var b bytes.Buffer
		if err := Render(&b, v, tc.output, tc.query); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.output, tc.query, b.String(), tc.want)
		}
	}
}

// A service error quotes what it was given; it reaches stderr escaped.
func TestServiceErrorEscapes(t *testing.T) {
	var b bytes.Buffer
	ServiceError(&b, errors.New("An error occurred (NotFoundException) when calling the DescribeKey operation: Key 'x\x1b[2J' does not exist"))
	want := "\nAn error occurred (NotFoundException) when calling the DescribeKey operation: Key 'x\\x1b[2J' does not exist\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
