package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// corpusRel is where the corpus of real Emperor configs sits inside the
// project's shared directory, beside the repository.
const corpusRel = "shared/corpus/emperor-configs"

// Corpus returns the directory of real Emperor configs written by others
// (third-party data: tests read it in place, never copy it). It is
// $EMPEROR_CORPUS, or shared/corpus/emperor-configs beside the checkout:
// in the parent of any directory above the test's (a clone may sit
// anywhere below the directory that holds shared/), or the project
// machines' /work/shared. Missing, the test skips, or fails under CI.
func Corpus(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("EMPEROR_CORPUS"); dir != "" {
		if abs, err := filepath.Abs(dir); err == nil && isCorpus(abs) {
			return abs
		}
		Missing(t, "EMPEROR_CORPUS="+dir+" holds no corpus (no SOURCES.md)")
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if c := filepath.Join(d, corpusRel); isCorpus(c) {
				return c
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	if c := filepath.Join("/work", corpusRel); isCorpus(c) {
		return c
	}
	Missing(t, "the Emperor config corpus (third-party data: ../"+corpusRel+" beside the checkout, or $EMPEROR_CORPUS)")
	return ""
}

func isCorpus(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "SOURCES.md"))
	return err == nil
}
