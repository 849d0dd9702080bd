package simclock

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // RFC3339Nano in UTC; "" means refused
		err  string // part of the error when refused
	}{
		{"2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", ""},
		{"2026-11-22T10:00:00.5Z", "2026-11-22T10:00:00.5Z", ""},
		{"2026-11-22T10:00:00.123456789Z", "2026-11-22T10:00:00.123456789Z", ""},
		{"2026-11-22T12:00:00+02:00", "2026-11-22T10:00:00Z", ""},
		{"2026-11-22T05:00:00-05:00", "2026-11-22T10:00:00Z", ""},
		{"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", ""},
		{"9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z", ""},

		{"2026-06-01", "", `"2026-06-01": a date alone is not a time; want an RFC 3339 time with a time zone, such as 2026-01-01T00:00:00Z`},
		{"1767225600", "", `"1767225600": Unix seconds are not accepted`},
		{"0", "", "Unix seconds"},
		{"2026-06-01T10:00:00", "", "no time zone"},
		{"2026-06-01 10:00:00", "", "no time zone"},
		{"2026-06-01t10:00:00z", "", "want an RFC 3339 time"},
		{"2026-06-01T10:00:00,5Z", "", "want an RFC 3339 time"},
		{"2026-06-01T10:00:00.1234567891Z", "", "want an RFC 3339 time"},
		{"2026-06-01T10:00Z", "", "want an RFC 3339 time"},
		{" 2026-06-01T10:00:00Z", "", "want an RFC 3339 time"},
		{"2026-06-01T10:00:00Z ", "", "want an RFC 3339 time"},
		{"2026-13-01T10:00:00Z", "", "want an RFC 3339 time"},
		{"2026-02-30T10:00:00Z", "", "want an RFC 3339 time"},
		{"2026-06-01T24:00:00Z", "", "want an RFC 3339 time"},
		{"2026-06-01T10:00:00+24:00", "", "want an RFC 3339 time"},
		{"+2026-06-01T10:00:00Z", "", "want an RFC 3339 time"},
		{"12026-06-01T10:00:00Z", "", "want an RFC 3339 time"},
		{"Mon, 01 Jun 2026 10:00:00 GMT", "", "want an RFC 3339 time"},
		{"now", "", `"now": want`},
		{"", "", `"": want`},
		{"1969-12-31T23:59:59Z", "", "out of range"},
		{"1970-01-01T00:30:00+01:00", "", "out of range"},
		{"9999-12-31T23:59:59-01:00", "", "out of range"},
	} {
		got, err := Parse(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want an error", tc.in, got)
			} else if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error %q, want it to contain %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got.Location() != time.UTC || got.Format(time.RFC3339Nano) != tc.want {
			t.Errorf("Parse(%q) = %s (%v), want %s UTC", tc.in, got.Format(time.RFC3339Nano), got.Location(), tc.want)
		}
	}
}

func TestParseAdvance(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0 means refused
	}{
		{"90s", 90 * time.Second},
		{"601s", 601 * time.Second},
		{"10m", 10 * time.Minute},
		{"48h", 48 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"1ns", 1},
		{"87600h", MaxAdvance},

		{"87600h1s", 0},
		{"100000h", 0},
		{"0", 0},
		{"0s", 0},
		{"-5m", 0},
		{"+5m", 0},
		{"5", 0},
		{"90", 0},
		{"0.1ns", 0},
		{".5s", 0},
		{"5 m", 0},
		{" 5m", 0},
		{"5m ", 0},
		{"2d", 0},
		{"", 0},
		{"9999999999999999999h", 0},
	} {
		got, err := ParseAdvance(tc.in)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("ParseAdvance(%q) = %v, want an error", tc.in, got)
		case tc.want == 0 && !strings.Contains(err.Error(), `"`+tc.in+`"`):
			t.Errorf("ParseAdvance(%q) error %q does not quote the input", tc.in, err)
		case tc.want != 0 && (err != nil || got != tc.want):
			t.Errorf("ParseAdvance(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestNow(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var nilClock *Clock
	for _, tc := range []struct {
		name  string
		c     *Clock
		fixed bool
	}{
		{"nil is real", nilClock, false},
		{"real", &Clock{Mode: Real}, false},
		{"fixed", &Clock{Mode: Fixed, At: at}, true},
		{"fixed in another zone", &Clock{Mode: Fixed, At: at.In(time.FixedZone("x", 3600))}, true},
	} {
		before := time.Now()
		got := tc.c.Now()
		if got.Location() != time.UTC {
			t.Errorf("%s: Now() in %v, want UTC", tc.name, got.Location())
		}
		if tc.fixed && !got.Equal(at) {
			t.Errorf("%s: Now() = %v, want %v", tc.name, got, at)
		}
		if !tc.fixed && (got.Before(before) || got.After(time.Now())) {
			t.Errorf("%s: Now() = %v, want the wall clock", tc.name, got)
		}
	}
}

func TestValidate(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		c  *Clock
		ok bool
	}{
		{nil, true},
		{&Clock{Mode: Real}, true},
		{&Clock{Mode: Fixed, At: at}, true},
		{&Clock{Mode: Real, At: at}, false},
		{&Clock{Mode: Fixed}, false}, // year 1: before 1970
		{&Clock{Mode: Fixed, At: Max.Add(time.Nanosecond)}, false},
		{&Clock{Mode: ""}, false},
		{&Clock{Mode: "Fixed", At: at}, false},
	} {
		if err := tc.c.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.c, err, tc.ok)
		}
	}
}

func TestJSON(t *testing.T) {
	for _, tc := range []struct {
		c    Clock
		want string
	}{
		{Clock{Mode: Real}, `{"mode":"real"}`},
		{Clock{Mode: Fixed, At: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}, `{"mode":"fixed","at":"2026-11-22T10:00:00Z"}`},
	} {
		b, err := json.Marshal(tc.c)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tc.c, b, err, tc.want)
		}
		var back Clock
		if err := json.Unmarshal(b, &back); err != nil || back.Mode != tc.c.Mode || !back.At.Equal(tc.c.At) {
			t.Errorf("Unmarshal(%s) = %+v, %v", b, back, err)
		}
	}
}

// FuzzParse: no input panics, and whatever is accepted is a UTC time in
// range that reads back the same from its RFC 3339 spelling.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"2026-01-01T00:00:00Z", "2026-11-22T12:00:00.5+02:00", "2026-06-01", "1767225600",
		"9999-12-31T23:59:59-01:00", "1970-01-01T00:00:00Z", "2026-06-01T10:00:00,5Z", "", "90s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), Example) && !strings.Contains(err.Error(), "out of range") {
				t.Fatalf("Parse(%q) error %q gives no example", s, err)
			}
			return
		}
		if got.Location() != time.UTC || InRange(got) != nil {
			t.Fatalf("Parse(%q) = %v: not UTC or out of range", s, got)
		}
		back, err := Parse(got.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(got) {
			t.Fatalf("Parse(%q) = %v; its RFC 3339 spelling reads back as %v, %v", s, got, back, err)
		}
		_, _ = ParseAdvance(s)
	})
}
