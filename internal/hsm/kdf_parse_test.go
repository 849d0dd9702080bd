package hsm

import (
	"strings"
	"testing"

	"github.com/hsmkit/hsmkit/internal/state"
)

func TestParseKDF(t *testing.T) {
	ok := []struct {
		in   string
		want state.KDF
	}{
		{"", DefaultKDF},
		{"default", DefaultKDF},
		{"test", TestKDF},
		{"t=3,m=65536,p=4", state.KDF{Time: 3, MemoryKiB: 65536, Threads: 4}},
		{"t=1,m=8,p=1", state.KDF{Time: 1, MemoryKiB: 8, Threads: 1}},
		{"t=10,m=1048576,p=16", state.KDF{Time: 10, MemoryKiB: 1048576, Threads: 16}},
		{"t=1,m=128,p=16", state.KDF{Time: 1, MemoryKiB: 128, Threads: 16}},
	}
	for _, tt := range ok {
		got, err := ParseKDF(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseKDF(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, want string }{
		// Syntax: Sscanf took all of these.
		{"t=3,m=65536,p=4x", `"p=4x" is not p=NUMBER`},
		{"t=3,m=65536,p=4,", "want default, test, or t=TIME,m=MEMORY_KIB,p=THREADS"},
		{"t=3,m=65536,p=4 ", `"p=4 " is not p=NUMBER`},
		{"t=+3,m=65536,p=4", `"t=+3" is not t=NUMBER`},
		{"t= 3,m=65536,p=4", `"t= 3" is not t=NUMBER`},
		{"t=3, m=65536,p=4", `" m=65536" is not m=NUMBER`},
		{"t=3,m=65536,p=4\n", `"p=4\n" is not p=NUMBER`},
		{"t=03,m=65536,p=4", `"t=03" is not t=NUMBER`},
		{"t=-1,m=65536,p=4", `"t=-1" is not t=NUMBER`},
		{"t=0x3,m=65536,p=4", `"t=0x3" is not t=NUMBER`},
		{"m=65536,t=3,p=4", `"m=65536" is not t=NUMBER`},
		{"t=3,m=65536", "want default, test, or t=TIME"},
		{"t=3,m=65536,p=4,q=1", "want default, test, or t=TIME"},
		{"T=3,m=65536,p=4", `"T=3" is not t=NUMBER`},
		{"t=,m=65536,p=4", `"t=" is not t=NUMBER`},
		{"Default", "want default, test, or t=TIME"},
		// Bounds.
		{"t=0,m=65536,p=4", "time t=0 is out of range: it is 1 to 10"},
		{"t=11,m=65536,p=4", "time t=11 is out of range: it is 1 to 10"},
		{"t=4294967296,m=65536,p=4", "time t=4294967296 is out of range: it is 1 to 10"},
		{"t=99999999999999999999999,m=8,p=1", "time t=99999999999999999999999 is out of range"},
		{"t=3,m=99999999999,p=4", "memory m=99999999999 KiB is out of range"},
		{"t=3,m=65536,p=0", "threads p=0 is out of range: it is 1 to 16"},
		{"t=3,m=65536,p=17", "threads p=17 is out of range: it is 1 to 16"},
		{"t=3,m=65536,p=256", "threads p=256 is out of range: it is 1 to 16"},
		{"t=3,m=31,p=4", "memory m=31 KiB is out of range: it is 8×THREADS (32) to 1048576 (1 GiB)"},
		{"t=3,m=1048577,p=4", "memory m=1048577 KiB is out of range: it is 8×THREADS (32) to 1048576 (1 GiB)"},
		{"t=3,m=0,p=1", "memory m=0 KiB is out of range"},
	}
	for _, tt := range bad {
		_, err := ParseKDF(tt.in)
		if err == nil || !strings.HasPrefix(err.Error(), "--kdf ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseKDF(%q) = %v; want an error with %q", tt.in, err, tt.want)
		}
	}
}
