package client

import (
	"encoding/base64"
	"encoding/binary"
	"math"
)

// AppendEmbedding appends v as the wire form of an embedding: little-endian
// float32 components, base64 (standard alphabet, padded).
func AppendEmbedding(dst []byte, v []float32) []byte {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.AppendEncode(dst, raw)
}

// DecodeEmbedding is the inverse of AppendEmbedding.
func DecodeEmbedding(b64 []byte) ([]float32, error) {
	raw, err := base64.StdEncoding.AppendDecode(nil, b64)
	if err != nil {
		return nil, err
	}
	if len(raw)%4 != 0 {
		return nil, base64.CorruptInputError(len(b64))
	}
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v, nil
}
