package biometric

import (
	"encoding/binary"
	"errors"
	"math"
)

// The stored frame encoding: what the server keeps of each frame as a
// store.FrameIn's Raw (the store compresses it), decoded again when frames
// are folded. Little-endian, version-tagged so a later format can be told
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

// ErrFrameCorrupt: a stored frame that does not decode (damage).
var ErrFrameCorrupt = errors.New("biometric: corrupt stored frame")

// AppendFrame appends the stored encoding of f to dst.
func AppendFrame(dst []byte, f *Frame) []byte {
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

// DecodeFrame parses src into f. f.Embedding aliases src. It never panics;
// malformed input is ErrFrameCorrupt.
func DecodeFrame(src []byte, f *Frame) error {
	if len(src) == 0 || src[0] != frameCodecVersion {
		return ErrFrameCorrupt
	}
	p := src[1:]
	var n int
	if f.Seq, n = binary.Uvarint(p); n <= 0 {
		return ErrFrameCorrupt
	}
	p = p[n:]
	if f.TS, n = binary.Varint(p); n <= 0 {
		return ErrFrameCorrupt
	}
	p = p[n:]
	if len(p) < 2 {
		return ErrFrameCorrupt
	}
	f.Type, f.DocType = FrameType(p[0]), DocType(p[1])
	p = p[2:]
	faces, n := binary.Uvarint(p)
	if n <= 0 || faces > math.MaxUint32 {
		return ErrFrameCorrupt
	}
	f.Faces = int32(uint32(faces))
	p = p[n:]
	if len(p) < 8 {
		return ErrFrameCorrupt
	}
	f.Quality = math.Float32frombits(binary.LittleEndian.Uint32(p))
	f.Liveness = math.Float32frombits(binary.LittleEndian.Uint32(p[4:]))
	p = p[8:]
	size, n := binary.Uvarint(p)
	if n <= 0 || size != uint64(len(p)-n) {
		return ErrFrameCorrupt
	}
	f.Embedding = p[n:]
	return nil
}

// FrameLen is the length of the encoded frame at the start of b, whose
// embedding is embBytes long: the frames of one request are appended into
// one buffer and sliced apart afterwards, once appending can no longer move
// it. b must start with a frame AppendFrame wrote.
func FrameLen(b []byte, embBytes int) int {
	// version, uvarint seq, varint ts, type, docType, uvarint faces, 8, uvarint len, embedding
	n := 1
	_, k := binary.Uvarint(b[n:])
	n += k
	_, k = binary.Varint(b[n:])
	n += k + 2
	_, k = binary.Uvarint(b[n:])
	n += k + 8
	_, k = binary.Uvarint(b[n:])
	return n + k + embBytes
}
