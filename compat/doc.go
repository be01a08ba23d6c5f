// Package compat holds the compatibility tests that compare this Emperor
// with a real uWSGI 2.0 on inputs written by other people. Its only code is
// test code: corpus_test.go runs every real Emperor config of the shared
// corpus under both, each in a throwaway host of its own.
package compat
