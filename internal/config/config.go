// Package config reads and writes cluster.yaml, the client's view of a
// cluster: which cluster, where its state is, and which HSMs this client
// talks to. Loading is strict: unknown keys, several documents and bad
// values are errors that name the file and line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/hsmkit/hsmkit/internal/fileio"
)

// HSM is one HSM the client talks to.
type HSM struct {
	ID string `yaml:"id"`
	IP string `yaml:"ip,omitempty"`
}

// Config is cluster.yaml.
type Config struct {
	Cluster string `yaml:"cluster"`
	State   string `yaml:"state"` // relative to the config file's directory
	HSMs    []HSM  `yaml:"hsms"`

	Path string     `yaml:"-"` // where it was read from
	node *yaml.Node // kept so a refresh keeps comments and the rest of the file
}

// Error is a problem in the file, with its position.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ErrNotFound is returned (wrapped) when the config file does not exist.
var ErrNotFound = errors.New("config file not found")

var (
	idPattern  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`) })
	yamlLineRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })
)

// maxSize bounds what Load reads: a config is a few hundred bytes, and
// --config /dev/zero or a wrong big file must fail, not hang.
const maxSize = 1 << 20

// Load reads and validates the config at path.
func Load(path string) (*Config, error) {
	data, err := fileio.ReadFile(path, maxSize)
	var nr *fileio.NotRegularError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w (create one with hsm-sim init, or pass --config)", path, ErrNotFound)
	case errors.As(err, &nr):
		// A directory, FIFO or device (-c /dev/zero) is refused unread.
		return nil, &Error{File: path, Msg: "is a " + nr.Kind + ", not a config file"}
	case errors.As(err, new(*fileio.TooLargeError)):
		return nil, &Error{File: path, Msg: fmt.Sprintf("larger than %s: not a cluster config", fileio.Size(maxSize))}
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "read" {
			return nil, &Error{File: path, Msg: pe.Err.Error()}
		}
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates config bytes; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "empty file: want the keys cluster, state and hsms"}
		}
		return nil, yamlError(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "a second YAML document: the config is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(name, data, err)
	}
	c := &Config{Path: name, node: &doc}
	if err := c.fromNode(name, &doc); err != nil {
		return nil, err
	}
	return c, nil
}

func yamlError(name string, data []byte, err error) error {
	if m := yamlLineRe().FindStringSubmatch(err.Error()); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return &Error{File: name, Line: line, Msg: m[2]}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	// The YAML reader names no line for bytes it cannot read as text.
	for i, r := range string(data) {
		if r == utf8.RuneError || (r < ' ' && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return &Error{File: name, Line: 1 + bytes.Count(data[:i], []byte("\n")),
				Msg: fmt.Sprintf("%s (byte %#02x): not a YAML text file", msg, data[i])}
		}
	}
	return &Error{File: name, Msg: msg}
}

func (c *Config) fromNode(name string, doc *yaml.Node) error {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return &Error{File: name, Line: root.Line, Msg: "want a mapping with the keys cluster, state and hsms"}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			return &Error{File: name, Line: k.Line, Msg: fmt.Sprintf("key %q given twice", k.Value)}
		}
		seen[k.Value] = true
		switch k.Value {
		case "cluster":
			if err := scalar(name, v, "cluster", &c.Cluster); err != nil {
				return err
			}
			if !idPattern().MatchString(c.Cluster) {
				return &Error{File: name, Line: v.Line, Msg: fmt.Sprintf("cluster: %q is not a cluster id (like cluster-abc123)", c.Cluster)}
			}
		case "state":
			if err := scalar(name, v, "state", &c.State); err != nil {
				return err
			}
			if c.State == "" {
				return &Error{File: name, Line: v.Line, Msg: "state: empty path"}
			}
		case "hsms":
			if v.Kind != yaml.SequenceNode {
				return &Error{File: name, Line: v.Line, Msg: "hsms: want a list of {id, ip}"}
			}
			ids := map[string]bool{}
			for j, item := range v.Content {
				h, err := hsmFromNode(name, j, item)
				if err != nil {
					return err
				}
				if ids[h.ID] {
					return &Error{File: name, Line: item.Line, Msg: fmt.Sprintf("hsms[%d]: HSM %s listed twice", j, h.ID)}
				}
				ids[h.ID] = true
				c.HSMs = append(c.HSMs, h)
			}
		default:
			return &Error{File: name, Line: k.Line, Msg: fmt.Sprintf("unknown key %q (want cluster, state, hsms)", k.Value)}
		}
	}
	for _, key := range []string{"cluster", "state", "hsms"} {
		if !seen[key] {
			return &Error{File: name, Line: root.Line, Msg: fmt.Sprintf("missing key %q", key)}
		}
	}
	if len(c.HSMs) == 0 {
		return &Error{File: name, Line: root.Line, Msg: "hsms: the list is empty"}
	}
	return nil
}

func hsmFromNode(name string, j int, n *yaml.Node) (HSM, error) {
	var h HSM
	if n.Kind != yaml.MappingNode {
		return h, &Error{File: name, Line: n.Line, Msg: fmt.Sprintf("hsms[%d]: want a mapping with id and ip", j)}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "id":
			if err := scalar(name, v, fmt.Sprintf("hsms[%d].id", j), &h.ID); err != nil {
				return h, err
			}
			if !idPattern().MatchString(h.ID) {
				return h, &Error{File: name, Line: v.Line, Msg: fmt.Sprintf("hsms[%d].id: %q is not an HSM id (like hsm-abc123)", j, h.ID)}
			}
		case "ip":
			if err := scalar(name, v, fmt.Sprintf("hsms[%d].ip", j), &h.IP); err != nil {
				return h, err
			}
			if _, err := netip.ParseAddr(h.IP); err != nil {
				return h, &Error{File: name, Line: v.Line, Msg: fmt.Sprintf("hsms[%d].ip: %q is not an IP address", j, h.IP)}
			}
		default:
			return h, &Error{File: name, Line: k.Line, Msg: fmt.Sprintf("hsms[%d]: unknown key %q (want id, ip)", j, k.Value)}
		}
	}
	if h.ID == "" {
		return h, &Error{File: name, Line: n.Line, Msg: fmt.Sprintf("hsms[%d]: missing id", j)}
	}
	return h, nil
}

func scalar(name string, v *yaml.Node, field string, out *string) error {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return &Error{File: name, Line: v.Line, Msg: fmt.Sprintf("%s: want a string", field)}
	}
	*out = v.Value
	return nil
}

// ValidID says whether s can name a cluster or an HSM.
func ValidID(s string) bool { return idPattern().MatchString(s) }

// StateDir is the state directory, resolved against the config's directory.
func (c *Config) StateDir() string {
	if filepath.IsAbs(c.State) {
		return c.State
	}
	return filepath.Join(filepath.Dir(c.Path), c.State)
}

// Lists says whether the config lists the HSM id.
func (c *Config) Lists(id string) bool {
	for _, h := range c.HSMs {
		if h.ID == id {
			return true
		}
	}
	return false
}

const header = "# hsmkit client config: the cluster, its state directory (relative to this\n# file) and the HSMs this client talks to. Refresh with: hsm-sync config --refresh\n"

// Create writes a new config at path; it refuses to overwrite a file.
func Create(path string, c *Config) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s already exists; not overwriting it", path)
	}
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return err
	}
	// WriteNew, not WriteFile: a config made meanwhile (two inits racing)
	// must not be replaced.
	err := fileio.WriteNew(path, buf.Bytes(), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting it", path)
	}
	return err
}

// SetHSMs replaces the HSM list and writes the file back, keeping its
// comments and other keys (hsm-sync config --refresh).
func (c *Config) SetHSMs(hsms []HSM) error {
	root := c.node
	if root.Kind == yaml.DocumentNode {
		root = root.Content[0]
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "hsms" {
			continue
		}
		// Keep the entries (and their comments) of HSMs that stay; encode new ones.
		old := map[string]*yaml.Node{}
		for _, item := range root.Content[i+1].Content {
			if h, err := hsmFromNode(c.Path, 0, item); err == nil {
				old[h.ID] = item
			}
		}
		list := root.Content[i+1]
		list.Content = nil
		for _, h := range hsms {
			if n, ok := old[h.ID]; ok {
				list.Content = append(list.Content, n)
				continue
			}
			var n yaml.Node
			if err := n.Encode(h); err != nil {
				return err
			}
			list.Content = append(list.Content, &n)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c.node); err != nil {
		return err
	}
	perm := os.FileMode(0o600)
	if fi, err := os.Stat(c.Path); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := fileio.WriteFile(c.Path, buf.Bytes(), perm); err != nil {
		return err
	}
	c.HSMs = hsms
	return nil
}
