// Package compat holds the compatibility tests that compare this Emperor
// with a real uWSGI 2.0 on inputs written by other people. Its only code is
// test code.
//
// TestCorpus runs every real Emperor config of the shared corpus
// (../shared/corpus/emperor-configs, or $EMPEROR_CORPUS) under /usr/bin/uwsgi
// and under our emperor, each in a throwaway host of its own (fresh mount,
// pid, network and UTS namespaces over an overlay of /), and checks that
// every config uWSGI starts, ours starts, and spawns a probe vassal where
// uWSGI does. It needs root:
//
//	go test -race -count=1 -v ./compat/...
//
// EMPEROR_CORPUS_REPORT=FILE writes the table of verdicts to FILE;
// EMPEROR_CORPUS_LOGS=DIR keeps each run's output in DIR;
// EMPEROR_CORPUS_ONLY=REGEXP runs only the corpus files it matches.
package compat
