// Command genman writes the man page of every hsmkit command (make man):
// DIR/<command>.1, generated from the commands' own definitions.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hsmkit/hsmkit/internal/cli"
	"github.com/hsmkit/hsmkit/internal/commands"
)

func main() {
	dir := flag.String("o", "man", "write the pages into `DIR`")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "genman:", err)
		os.Exit(1)
	}
	for _, name := range commands.Names() {
		app, err := cli.Definition(name, commands.All[name])
		if err == nil {
			path := filepath.Join(*dir, name+".1")
			err = os.WriteFile(path, []byte(cli.ManPage(app)), 0o644)
			fmt.Println(path)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "genman:", err)
			os.Exit(1)
		}
	}
}
