package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/internal/testenv"
)

// TestCorpusParses: every real Emperor config of the corpus, ini file or
// command line (one argument per line, argv[0] first), reads without a
// refusal: short options, bare config names, config logic and all.
// Other files they name (/etc/uwsgi/local.ini, ...) are stood in for by
// a section with one option.
func TestCorpusParses(t *testing.T) {
	corpusDir := testenv.Corpus(t) // real Emperor configs (third-party data, read in place)
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*"))
	if len(files) == 0 {
		t.Fatalf("an empty corpus at %s", corpusDir)
	}
	n := 0
	for _, f := range files {
		name := filepath.Base(f)
		switch {
		case strings.HasSuffix(name, ".ini"):
			n++
			t.Run(name, func(t *testing.T) {
				l, _ := newLoader()
				l.ReadFile = stubOutside(corpusDir)
				if _, err := l.Load(config.INI, f); err != nil {
					t.Error(err)
				}
			})
		case strings.HasSuffix(name, ".argv"):
			n++
			t.Run(name, func(t *testing.T) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				argv := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
				l, _ := newLoader()
				l.ReadFile = stubOutside(corpusDir)
				c, err := l.Args(argv[1:])
				if err != nil {
					t.Fatal(err)
				}
				if len(c.Options) == 0 {
					t.Errorf("no option read from %q", argv[1:])
				}
			})
		}
	}
	if n < 30 {
		t.Errorf("only %d configs in the corpus", n)
	}
}

// stubOutside reads the files of the corpus in corpusDir and gives any
// other config a section with one option, in its format.
func stubOutside(corpusDir string) func(path string) ([]byte, error) {
	return func(path string) ([]byte, error) { return stubbed(corpusDir, path) }
}

func stubbed(corpusDir, path string) ([]byte, error) {
	if strings.HasPrefix(path, corpusDir) {
		return os.ReadFile(path)
	}
	switch f, _ := config.FormatOf(path); f {
	case config.XML:
		return []byte("<uwsgi><stub/></uwsgi>"), nil
	case config.YAML:
		return []byte("uwsgi:\n  stub: 1\n"), nil
	case config.JSON:
		return []byte(`{"uwsgi": {"stub": 1}}`), nil
	}
	return []byte("[uwsgi]\nstub = 1\n"), nil
}
