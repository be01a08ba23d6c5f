package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Config frames carry config text on the config channel: four header bytes,
// then the body.
//
//	[0x73] [len low] [len high] [0x00] body...
//
// The length is a uint16 in host byte order, which is little-endian on every
// platform we support, so a uWSGI frame holds at most MaxFrame bytes.
//
// Our own vassal also understands an extended frame for larger configs:
// modifier2 = 1 announces that a further 4-byte little-endian length follows
// the header and the 16-bit field is ignored. The Emperor only sends it to a
// vassal that is not uWSGI (see Frame.Extended).
const (
	// FrameModifier1 is the first header byte of a config frame.
	FrameModifier1 = 0x73
	// MaxFrame is the largest body a classic (uWSGI) frame can carry.
	MaxFrame = 0xFFFF
	// MaxExtendedFrame bounds the extended frame: 16 MiB of config text is
	// far beyond any sane config and keeps a hostile peer from making the
	// reader allocate without limit.
	MaxExtendedFrame = 16 << 20

	modifierExtended = 1
)

// ErrFrameTooLarge means config text does not fit the frame format in use.
var ErrFrameTooLarge = errors.New("config too large for a frame")

// AppendFrame appends one frame carrying text to dst. With extended false it
// writes the classic uWSGI frame and fails with ErrFrameTooLarge above
// MaxFrame bytes; with extended true it writes the extended form when the
// text needs it (a classic frame otherwise, so small configs stay readable by
// uWSGI). An empty text is refused: uWSGI vassals treat length 0 as an error.
func AppendFrame(dst, text []byte, extended bool) ([]byte, error) {
	n := len(text)
	switch {
	case n == 0:
		return dst, errors.New("config frame: empty config")
	case n <= MaxFrame:
		dst = append(dst, FrameModifier1, byte(n), byte(n>>8), 0)
	case !extended:
		return dst, fmt.Errorf("config frame: %d bytes, uWSGI's limit is %d: %w", n, MaxFrame, ErrFrameTooLarge)
	case n > MaxExtendedFrame:
		return dst, fmt.Errorf("config frame: %d bytes, limit is %d: %w", n, MaxExtendedFrame, ErrFrameTooLarge)
	default:
		dst = append(dst, FrameModifier1, 0, 0, modifierExtended)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	}
	return append(dst, text...), nil
}

// ReadFrame reads one frame from r and returns its body. It accepts classic
// and extended frames; like uWSGI it does not check modifier1.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("config frame: header: %w", err)
	}
	n := int(hdr[1]) | int(hdr[2])<<8
	if hdr[3] == modifierExtended {
		var ext [4]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return nil, fmt.Errorf("config frame: extended length: %w", err)
		}
		n = int(binary.LittleEndian.Uint32(ext[:]))
		if n > MaxExtendedFrame {
			return nil, fmt.Errorf("config frame: %d bytes, limit is %d: %w", n, MaxExtendedFrame, ErrFrameTooLarge)
		}
	}
	if n == 0 {
		return nil, errors.New("config frame: empty config")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("config frame: body of %d bytes: %w", n, err)
	}
	return body, nil
}
