package server

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/countersign/countersign/engine/biometric"
)

// Frame encoding stored by the server as a StoredFrame's Raw (the store
// compresses it). Little-endian, version-tagged so a later format can be told
// apart:
//
//	byte     version (1)
//	uvarint  seq
//	varint   ts (unix ms)
//	byte     type
//	byte     docType
//	uvarint  faces
//	4 bytes  quality (float32 bits)
//	4 bytes  liveness (float32 bits)
//	uvarint  len(embedding), then the embedding bytes (LE float32 x D)
const frameCodecVersion = 1

var errFrameCorrupt = errors.New("server: corrupt stored frame")

// appendFrame appends the stored encoding of f to dst.
func appendFrame(dst []byte, f *biometric.Frame) []byte {
	dst = append(dst, frameCodecVersion)
	dst = binary.AppendUvarint(dst, f.Seq)
	dst = binary.AppendVarint(dst, f.TS)
	dst = append(dst, byte(f.Type), byte(f.DocType))
	dst = binary.AppendUvarint(dst, uint64(uint32(f.Faces)))
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f.Quality))
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f.Liveness))
	dst = binary.AppendUvarint(dst, uint64(len(f.Embedding)))
	return append(dst, f.Embedding...)
}

// decodeFrame parses src into f. f.Embedding aliases src. It never panics;
// malformed input is errFrameCorrupt.
func decodeFrame(src []byte, f *biometric.Frame) error {
	if len(src) == 0 || src[0] != frameCodecVersion {
		return errFrameCorrupt
	}
	p := src[1:]
	var n int
	if f.Seq, n = binary.Uvarint(p); n <= 0 {
		return errFrameCorrupt
	}
	p = p[n:]
	if f.TS, n = binary.Varint(p); n <= 0 {
		return errFrameCorrupt
	}
	p = p[n:]
	if len(p) < 2 {
		return errFrameCorrupt
	}
	f.Type, f.DocType = biometric.FrameType(p[0]), biometric.DocType(p[1])
	p = p[2:]
	faces, n := binary.Uvarint(p)
	if n <= 0 || faces > math.MaxUint32 {
		return errFrameCorrupt
	}
	f.Faces = int32(uint32(faces))
	p = p[n:]
	if len(p) < 8 {
		return errFrameCorrupt
	}
	f.Quality = math.Float32frombits(binary.LittleEndian.Uint32(p))
	f.Liveness = math.Float32frombits(binary.LittleEndian.Uint32(p[4:]))
	p = p[8:]
	size, n := binary.Uvarint(p)
	if n <= 0 || size != uint64(len(p)-n) {
		return errFrameCorrupt
	}
	f.Embedding = p[n:]
	return nil
}
