package verify

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A Bitcoin transaction read and written exactly as rust-bitcoin 0.32's
// consensus encoding does, so that "decodes and re-serializes to the same
// bytes" means the same thing here as in the Rust verifier. Only what the
// verifier needs is kept: the outputs' scripts and whether any input has
// witness data.

type txIn struct {
	prevout  [36]byte
	script   []byte
	sequence uint32
	witness  [][]byte
}

type txOut struct {
	value  uint64
	script []byte
}

type tx struct {
	version  uint32
	inputs   []txIn
	outputs  []txOut
	lockTime uint32
}

// maxVecSize is rust-bitcoin's MAX_VEC_SIZE.
const maxVecSize = 4_000_000

var errEOF = errors.New("unexpected end of data")

type reader struct {
	b []byte
}

func (r *reader) take(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)) {
		return nil, errEOF
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out, nil
}

func (r *reader) u8() (byte, error) {
	b, err := r.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) u32() (uint32, error) {
	b, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// compactSize reads a CompactSize integer, refusing non-minimal encodings.
func (r *reader) compactSize() (uint64, error) {
	first, err := r.u8()
	if err != nil {
		return 0, err
	}
	var n uint64
	var min uint64
	switch first {
	case 0xff:
		b, err := r.take(8)
		if err != nil {
			return 0, err
		}
		n, min = binary.LittleEndian.Uint64(b), 0x1_0000_0000
	case 0xfe:
		b, err := r.take(4)
		if err != nil {
			return 0, err
		}
		n, min = uint64(binary.LittleEndian.Uint32(b)), 0x1_0000
	case 0xfd:
		b, err := r.take(2)
		if err != nil {
			return 0, err
		}
		n, min = uint64(binary.LittleEndian.Uint16(b)), 0xfd
	default:
		return uint64(first), nil
	}
	if n < min {
		return 0, errors.New("non-minimal varint")
	}
	return n, nil
}

func (r *reader) varBytes() ([]byte, error) {
	n, err := r.compactSize()
	if err != nil {
		return nil, err
	}
	return r.take(n)
}

// Element counts are read one element at a time, never allocated up
// front, so a huge count in a short input fails on the data, not on memory.
func (r *reader) inputs() ([]txIn, error) {
	n, err := r.compactSize()
	if err != nil {
		return nil, err
	}
	var out []txIn
	for i := uint64(0); i < n; i++ {
		var in txIn
		prev, err := r.take(36)
		if err != nil {
			return nil, err
		}
		copy(in.prevout[:], prev)
		if in.script, err = r.varBytes(); err != nil {
			return nil, err
		}
		if in.sequence, err = r.u32(); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func (r *reader) outputs() ([]txOut, error) {
	n, err := r.compactSize()
	if err != nil {
		return nil, err
	}
	var out []txOut
	for i := uint64(0); i < n; i++ {
		v, err := r.take(8)
		if err != nil {
			return nil, err
		}
		script, err := r.varBytes()
		if err != nil {
			return nil, err
		}
		out = append(out, txOut{value: binary.LittleEndian.Uint64(v), script: script})
	}
	return out, nil
}

func (r *reader) witness() ([][]byte, error) {
	n, err := r.compactSize()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i := uint64(0); i < n; i++ {
		item, err := r.varBytes()
		if err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

// decodeTx reads a whole transaction: an empty input list is the BIP144
// marker, followed by flag 1 and the inputs, outputs and witnesses; every
// byte must be used.
func decodeTx(raw []byte) (*tx, error) {
	// rust-bitcoin reads a transaction through a reader limited to
	// MAX_VEC_SIZE bytes.
	if len(raw) > maxVecSize {
		return nil, errors.New("transaction longer than 4000000 bytes")
	}
	r := &reader{b: raw}
	var t tx
	var err error
	if t.version, err = r.u32(); err != nil {
		return nil, err
	}
	if t.inputs, err = r.inputs(); err != nil {
		return nil, err
	}
	if len(t.inputs) == 0 {
		flag, err := r.u8()
		if err != nil {
			return nil, err
		}
		if flag != 1 {
			return nil, fmt.Errorf("unsupported segwit version %d", flag)
		}
		if t.inputs, err = r.inputs(); err != nil {
			return nil, err
		}
		if t.outputs, err = r.outputs(); err != nil {
			return nil, err
		}
		anyWitness := false
		for i := range t.inputs {
			if t.inputs[i].witness, err = r.witness(); err != nil {
				return nil, err
			}
			anyWitness = anyWitness || len(t.inputs[i].witness) > 0
		}
		if len(t.inputs) > 0 && !anyWitness {
			return nil, errors.New("witness flag set but no witnesses present")
		}
	} else if t.outputs, err = r.outputs(); err != nil {
		return nil, err
	}
	if t.lockTime, err = r.u32(); err != nil {
		return nil, err
	}
	if len(r.b) != 0 {
		return nil, errors.New("data not consumed entirely when explicitly deserializing")
	}
	return &t, nil
}

func (t *tx) hasWitness() bool {
	for _, in := range t.inputs {
		if len(in.witness) > 0 {
			return true
		}
	}
	return false
}

func appendCompactSize(b []byte, n uint64) []byte {
	switch {
	case n < 0xfd:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(n))
	case n <= 0xffff_ffff:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(n))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xff), n)
}

// serialize writes the transaction as rust-bitcoin does: the BIP144 form
// when an input has witness data or there are no inputs, else the legacy form.
func (t *tx) serialize() []byte {
	segwit := t.hasWitness() || len(t.inputs) == 0
	b := binary.LittleEndian.AppendUint32(nil, t.version)
	if segwit {
		b = append(b, 0x00, 0x01)
	}
	b = appendCompactSize(b, uint64(len(t.inputs)))
	for _, in := range t.inputs {
		b = append(b, in.prevout[:]...)
		b = appendCompactSize(b, uint64(len(in.script)))
		b = append(b, in.script...)
		b = binary.LittleEndian.AppendUint32(b, in.sequence)
	}
	b = appendCompactSize(b, uint64(len(t.outputs)))
	for _, out := range t.outputs {
		b = binary.LittleEndian.AppendUint64(b, out.value)
		b = appendCompactSize(b, uint64(len(out.script)))
		b = append(b, out.script...)
	}
	if segwit {
		for _, in := range t.inputs {
			b = appendCompactSize(b, uint64(len(in.witness)))
			for _, item := range in.witness {
				b = appendCompactSize(b, uint64(len(item)))
				b = append(b, item...)
			}
		}
	}
	return binary.LittleEndian.AppendUint32(b, t.lockTime)
}
