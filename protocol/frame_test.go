package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameIsUWSGIs(t *testing.T) {
	got, err := AppendFrame(nil, []byte("[uwsgi]\nsocket = :3031\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x73, 23, 0, 0}, "[uwsgi]\nsocket = :3031\n"...)
	if !bytes.Equal(got, want) {
		t.Errorf("frame = % x\nwant    % x", got, want)
	}
}

func TestFrameLimits(t *testing.T) {
	if _, err := AppendFrame(nil, nil, true); err == nil {
		t.Error("empty config framed")
	}
	big := bytes.Repeat([]byte("x"), MaxFrame+1)
	if _, err := AppendFrame(nil, big, false); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("classic frame of %d bytes: err %v", len(big), err)
	}
	f, err := AppendFrame(nil, big, true)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadFrame(bytes.NewReader(f))
	if err != nil || !bytes.Equal(back, big) {
		t.Errorf("extended frame round trip: %d bytes, %v", len(back), err)
	}
	// Two frames queued back to back are read one at a time.
	two, _ := AppendFrame(nil, []byte("one"), false)
	two, _ = AppendFrame(two, []byte("two"), false)
	r := bytes.NewReader(two)
	a, _ := ReadFrame(r)
	b, _ := ReadFrame(r)
	if string(a) != "one" || string(b) != "two" {
		t.Errorf("frames %q %q", a, b)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0x73, 10, 0, 0, 'x'})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
	hostile := []byte{0x73, 0, 0, 1, 0xff, 0xff, 0xff, 0x7f}
	if _, err := ReadFrame(bytes.NewReader(hostile)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("2 GiB extended length: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	seed, _ := AppendFrame(nil, []byte("[uwsgi]\nhttp-socket = :8080\n"), false)
	f.Add(seed)
	f.Add([]byte{0x73, 0, 0, 1, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x73, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(body) == 0 || len(body) > MaxExtendedFrame || len(body) > len(data) {
			t.Fatalf("body of %d bytes from %d input bytes", len(body), len(data))
		}
		again, err := AppendFrame(nil, body, true)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ReadFrame(bytes.NewReader(again))
		if err != nil || !bytes.Equal(back, body) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzControlBytes(f *testing.F) {
	f.Add(byte(1))
	f.Add(byte(26))
	f.Add(byte(200))
	f.Fuzz(func(t *testing.T, b byte) {
		if Byte(b).FromVassal() == "" || Byte(b).FromEmperor() == "" {
			t.Fatal("unnamed byte")
		}
	})
}
