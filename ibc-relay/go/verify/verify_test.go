package verify

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.invalid/btcts/consumer/packet"
)

const goldenDir = "../../../aggregator/tests/data"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func header80(t testing.TB, s string) [80]byte {
	t.Helper()
	var h [80]byte
	if b := mustHex(t, s); len(b) != 80 {
		t.Fatalf("header of %d bytes", len(b))
	} else {
		copy(h[:], b)
	}
	return h
}

const (
	bitcoinGenesis = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
	regtestGenesis = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4adae5494dffff7f2002000000"
	// Litecoin mainnet genesis: its scrypt hash meets the target, its sha256d does not.
	litecoinGenesis = "010000000000000000000000000000000000000000000000000000000000000000000000d9ced4ed1130f7b7faad9be25323ffafa33232a17c3edf6cfd97bee6bafbdd97b9aa8e4ef0ff0f1ecd513f7c"
)

func TestParseNetwork(t *testing.T) {
	for _, n := range Networks {
		got, err := ParseNetwork(string(n))
		if err != nil || got != n {
			t.Errorf("%s: %v %v", n, got, err)
		}
	}
	for _, bad := range []string{"", "mainnet", "Bitcoin", "litecoin_regtest"} {
		if _, err := ParseNetwork(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCompactToTargetFollowsRustBitcoin(t *testing.T) {
	tests := []struct {
		bits uint32
		want string // hex of the 256-bit target
	}{
		{0x1d00ffff, "ffff" + strings.Repeat("0", 52)},
		{0x207fffff, "7fffff" + strings.Repeat("0", 58)},
		{0x03123456, "123456"},
		{0x02123456, "1234"},
		{0x01123456, "12"},
		{0x04923456, "0"},                            // negative mantissa: zero
		{0x23000001, "1"},                            // shift of 256 wraps to 0, as U256's wrapping shl
		{0x2201007f, "7f" + strings.Repeat("0", 62)}, // bits above 2^256 dropped
		{0x00000000, "0"},
	}
	for _, tt := range tests {
		if got := CompactToTarget(tt.bits).Text(16); got != tt.want {
			t.Errorf("bits %08x: got %s, want %s", tt.bits, got, tt.want)
		}
	}
}

func TestCheckPoW(t *testing.T) {
	mainnetBad := header80(t, bitcoinGenesis)
	mainnetBad[76] ^= 1
	tests := []struct {
		name    string
		network Network
		header  [80]byte
		err     string
	}{
		{"bitcoin genesis", Bitcoin, header80(t, bitcoinGenesis), ""},
		{"bitcoin genesis on testnet", Testnet, header80(t, bitcoinGenesis), ""},
		{"regtest genesis", Regtest, header80(t, regtestGenesis), ""},
		{"litecoin genesis (scrypt)", Litecoin, header80(t, litecoinGenesis), ""},
		{"nonce changed", Bitcoin, mainnetBad, errInsufficientWork},
		{"regtest bits on mainnet", Bitcoin, header80(t, regtestGenesis), errTargetAboveLimit},
		{"regtest bits on signet", Signet, header80(t, regtestGenesis), errTargetAboveLimit},
		{"unknown network", Network("dogecoin"), header80(t, bitcoinGenesis), "unknown anchor network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPoW(tt.network, tt.header)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("got %v, want %q", err, tt.err)
			}
		})
	}
	// The same header's sha256d does not meet the target: the function matters.
	ltc := header80(t, litecoinGenesis)
	if h, err := PowHash(Bitcoin, ltc); err != nil || h.Cmp(CompactToTarget(headerBits(ltc))) <= 0 {
		t.Errorf("litecoin genesis meets its target with sha256d (%v)", err)
	}
	if got := hex.EncodeToString(reversed(BlockHash(ltc))); got != "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2" {
		t.Errorf("litecoin genesis hash %s", got)
	}
}

func reversed(h [32]byte) []byte {
	reverse(h[:])
	return h[:]
}

func TestCheckDifficulty(t *testing.T) {
	prev := header80(t, regtestGenesis)
	withBits := func(bits uint32) [80]byte {
		h := prev
		h[72], h[73], h[74], h[75] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		return h
	}
	prev = withBits(0x1d00ffff)
	tests := []struct {
		network Network
		height  uint32
		bits    uint32
		ok      bool
	}{
		{Bitcoin, 2017, 0x1d00ffff, true},
		{Bitcoin, 2017, 0x1c7fff80, false},
		{Bitcoin, 4032, 0x1c3fffc0, true},
		{Bitcoin, 4032, 0x1c3fff00, false},
		{Bitcoin, 4032, 0x1d03fffc, true},
		{Bitcoin, 4032, 0x1d040000, false},
		{Litecoin, 4033, 0x1d03fffc, false},
		{Signet, 4032, 0x1d03fffc, true},
		{Testnet4, 17, 0x1d040000, true},
		{Testnet, 17, 0x207fffff, true},
		{Regtest, 4032, 0x1d00ffff, true},
		{Regtest, 4032, 0x1d00fffe, false},
		{LitecoinRegtest, 17, 0x1c00ffff, false},
	}
	for _, tt := range tests {
		err := checkDifficulty(tt.network, tt.height, prev, withBits(tt.bits))
		if (err == nil) != tt.ok {
			t.Errorf("%s at %d bits %08x: %v", tt.network, tt.height, tt.bits, err)
		}
	}
}

func TestLeafVectorOfTheFormatDocument(t *testing.T) {
	r := Record{Kind: KindPosBlock, ChainID: "cosmoshub-4", Height: 1}
	copy(r.BlockHash[:], bytes.Repeat([]byte{0x11}, 32))
	copy(r.StakerSetDigest[:], bytes.Repeat([]byte{0x22}, 32))
	pre := LeafPreimage(r)
	want := "00010b636f736d6f736875622d340000000000000001" + strings.Repeat("11", 32) + strings.Repeat("22", 32)
	if hex.EncodeToString(pre) != want {
		t.Fatalf("preimage %x", pre)
	}
	back, err := decodeLeaf(pre)
	if err != nil || back != r {
		t.Fatalf("decode: %v %v", back, err)
	}
	for _, bad := range []string{"", "01", "00", "0007", "0002ab", want[:len(want)-2], want + "00", "00010b636f736d6f736875622f34" + want[28:]} {
		if _, err := decodeLeaf(mustHex(t, bad)); err == nil {
			t.Errorf("preimage %q accepted", bad)
		}
	}
}

func TestPathSides(t *testing.T) {
	tests := []struct {
		index, size uint64
		want        string
		ok          bool
	}{
		{0, 1, "", true},
		{1, 5, "LRR", true},
		{4, 5, "L", true},
		{2, 3, "L", true},
		{1, 7, "LRR", true},
		{5, 5, "", false},
		{0, 0, "", false},
	}
	for _, tt := range tests {
		sides, ok := pathSides(tt.index, tt.size)
		var got strings.Builder
		for _, s := range sides {
			got.WriteString(strings.ToUpper(string(s[:1])))
		}
		if ok != tt.ok || got.String() != tt.want {
			t.Errorf("%d of %d: %q %v", tt.index, tt.size, got.String(), ok)
		}
	}
}

func TestGoldenProofsVerify(t *testing.T) {
	tests := []struct {
		file          string
		network       Network
		kind          string
		confirmations uint32
	}{
		{"bitcoin-regtest-pos-block.json", Regtest, KindPosBlock, 3},
		{"litecoin-regtest-pos-block.json", LitecoinRegtest, KindPosBlock, 3},
		{"litecoin-regtest-digest.json", LitecoinRegtest, KindDigest, 3},
	}
	tag := [4]byte{'B', 'T', 'C', 'T'}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			doc, err := os.ReadFile(filepath.Join(goldenDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			v, err := VerifyProof(doc, &tt.network, &tag)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if v.Record.Kind != tt.kind || v.Anchor == nil || v.Anchor.Confirmations != tt.confirmations {
				t.Fatalf("got %+v", v)
			}
			p, err := ParseProof(doc)
			if err != nil {
				t.Fatal(err)
			}
			canon, err := p.CanonicalJSON()
			if err != nil || !bytes.Equal(canon, doc) {
				t.Fatalf("the golden file is not re-encoded byte for byte (%v)", err)
			}
			other := Bitcoin
			if _, err := VerifyProof(doc, &other, nil); err == nil || !strings.HasPrefix(err.Error(), "network: ") {
				t.Fatalf("another network: %v", err)
			}
			otherTag := [4]byte{'X', 'X', 'X', 'X'}
			if _, err := VerifyProof(doc, nil, &otherTag); err == nil || !strings.HasPrefix(err.Error(), "op_return payload: ") {
				t.Fatalf("another tag: %v", err)
			}
		})
	}
}

func TestProofDocumentsAreReadStrictly(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(goldenDir, "bitcoin-regtest-pos-block.json"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	tests := []struct {
		name string
		doc  string
		err  string
	}{
		{"not json", "{", "malformed proof document"},
		{"array", "[]", "format field is None"},
		{"other format", `{"format":"ots"}`, `format field is Some("ots")`},
		{"newer version", `{"format":"btcts-proof","version":2,"anything":1}`, "unsupported proof version 2"},
		{"no version", `{"format":"btcts-proof"}`, "unsupported proof version 0"},
		{"fields missing", `{"format":"btcts-proof","version":1}`, "malformed proof document"},
		{"unknown field", strings.Replace(text, `"version": 1,`, `"version": 1, "x": 1,`, 1), "malformed proof document"},
		{"field in another case", strings.Replace(text, `"leaf":`, `"Leaf":`, 1), "malformed proof document"},
		{"null path", strings.Replace(text, `"path": [`, `"path": null, "p": [`, 1), "malformed proof document"},
		{"odd hex", strings.Replace(text, `"tx": "02`, `"tx": "2`, 1), "malformed proof document"},
		{"unknown side", strings.Replace(text, `"side": "left"`, `"side": "up"`, 1), "malformed proof document"},
		{"unknown network", strings.Replace(text, `"network": "regtest"`, `"network": "mainnet"`, 1), "malformed proof document"},
		{"bad chain id", strings.Replace(text, `"chain_id": "cosmoshub-4"`, `"chain_id": "cosmos/hub"`, 1), "malformed proof document"},
		{"trailing data", text + "x", "malformed proof document"},
		{"pow of another network", strings.Replace(text, `"pow": "sha256d"`, `"pow": "scrypt"`, 1), "network: "},
		{"record not the leaf's", strings.Replace(text, `"height": 101`, `"height": 102`, 1), "leaf: "},
		{"short header", strings.Replace(text, `00812469ffff7f2000000000"`, `00812469ffff7f20000000"`, 1), "block header: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyProof([]byte(tt.doc), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want %q", err, tt.err)
			}
		})
	}
	// Upper-case hex is read (as Rust reads it) but is not canonical.
	upper := strings.Replace(text, `"tag": "42544354"`, `"tag": "4254434A"`, 1)
	p, err := ParseProof([]byte(strings.Replace(upper, "4A", "54", 1)))
	if err != nil {
		t.Fatalf("upper-case hex refused: %v", err)
	}
	if c, _ := p.CanonicalJSON(); bytes.Equal(c, []byte(upper)) {
		t.Fatal("upper-case hex re-encoded as itself")
	}
}

// txHex is the golden bitcoin-regtest anchor transaction.
const txHex = "02000000017dd958719043617c3f0084a74b5a74db43c77a580afd66745f4ad443d9b5fce00000000000fdffffff0200000000000000002f6a2d42544354010000000000000000f5e757b55de22a2fd14991668587ef476f7db866eb02f30fe5e5a8757c9df720f0ca052a01000000160014111111111111111111111111111111111111111100000000"

func TestTransactionsRoundTripAsRustBitcoin(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		decodes   bool
		roundTrip bool // re-serializes to the same bytes without witness data
	}{
		{"legacy", txHex, true, true},
		{"trailing byte", txHex + "00", false, false},
		{"truncated", txHex[:len(txHex)-2], false, false},
		// Zero inputs: BIP144 marker and flag, no inputs, one output, lock time.
		// rust-bitcoin reads and writes this form, so it round-trips.
		{"no inputs", "02000000" + "0001" + "00" + "01" + "0000000000000000" + "00" + "00000000", true, true},
		{"no inputs, legacy form", "02000000" + "00" + "01" + "0000000000000000" + "00" + "00000000", false, false},
		{"segwit flag 2", "02000000" + "0002" + "00" + "00" + "00000000", false, false},
		{"flag without witnesses", "02000000" + "0001" + txHex[8:len(txHex)-8] + "00" + "00000000", false, false},
		{"with a witness", "02000000" + "0001" + txHex[8:len(txHex)-8] + "0101aa" + "00000000", true, false},
		{"non-minimal varint", "02000000" + "fd0100" + txHex[10:], false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mustHex(t, tt.raw)
			tx, err := decodeTx(raw)
			if (err == nil) != tt.decodes {
				t.Fatalf("decode: %v", err)
			}
			if err != nil {
				return
			}
			if rt := bytes.Equal(tx.serialize(), raw) && !tx.hasWitness(); rt != tt.roundTrip {
				t.Fatalf("round trip %v", rt)
			}
		})
	}
}

// goldenPacket builds the packet of a golden proof with the anchor block
// and its headers after it, as ibc_relay::packet::build_packet does.
func goldenPacket(t *testing.T, file string) ([]byte, *Proof) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(goldenDir, file))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProof(doc)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Anchor
	headers := [][]byte{a.Block.Header}
	for _, h := range a.HeadersAfter {
		headers = append(headers, h.Header)
	}
	pkt := packet.TimestampPacket{
		Version: 1,
		Record: &packet.PosBlockRecord{
			ChainId: p.Record.ChainID, Height: p.Record.Height,
			BlockHash: p.Record.BlockHash[:], StakerSetDigest: p.Record.StakerSetDigest[:],
		},
		Proof:       doc,
		FirstHeight: a.Block.Height,
		Headers:     headers,
		Depth:       uint32(len(headers)),
	}
	data, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data, p
}

func TestGoldenPacketV1(t *testing.T) {
	data, err := os.ReadFile("../../tests/data/packet-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	var pkt packet.TimestampPacket
	if err := pkt.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	if again, _ := pkt.Marshal(); !bytes.Equal(again, data) {
		t.Fatal("packet-v1.bin is not canonical in Go")
	}
	network, tag := LitecoinRegtest, [4]byte{'B', 'T', 'C', 'T'}
	v, err := VerifyProof(pkt.Proof, &network, &tag)
	if err != nil {
		t.Fatalf("proof: %v", err)
	}
	if v.Anchor.BlockHeight != pkt.FirstHeight || pkt.Depth != 3 || len(pkt.Headers) != 3 {
		t.Fatalf("packet %d/%d/%d, anchor %d", pkt.FirstHeight, pkt.Depth, len(pkt.Headers), v.Anchor.BlockHeight)
	}
	built, _ := goldenPacket(t, "litecoin-regtest-pos-block.json")
	if !bytes.Equal(built, data) {
		t.Fatal("Go builds another packet from the golden proof than Rust did")
	}
	// Its trusted header (the block before the anchor) is stored nowhere:
	// with another one, the first header does not link.
	trusted := TrustedHeader{Height: pkt.FirstHeight - 1, Header: header80(t, regtestGenesis)}
	params := Params{SourceChains: []string{"cosmoshub-4"}, Network: network, Tag: tag, K: 1}
	_, err = VerifyPacket(data, trusted, params)
	if err == nil || err.Error() != "headers: header at height 102 does not link to the one before it" {
		t.Fatalf("got %v", err)
	}
}

// The bitcoind golden proof is anchored at height 1, so regtest's genesis
// block is its trusted header and the whole packet verifies.
func TestBitcoinGoldenPacketFromGenesis(t *testing.T) {
	data, p := goldenPacket(t, "bitcoin-regtest-pos-block.json")
	trusted := TrustedHeader{Height: 0, Header: header80(t, regtestGenesis)}
	params := Params{SourceChains: []string{"osmosis-1", "cosmoshub-4"}, Network: Regtest, Tag: [4]byte{'B', 'T', 'C', 'T'}, K: 3}
	v, err := VerifyPacket(data, trusted, params)
	if err != nil {
		t.Fatal(err)
	}
	if v.Depth != 3 || v.BitcoinHeight != 1 || v.ChainID != "cosmoshub-4" || v.Height != 101 ||
		v.RecordID != p.Leaf.Hash || v.BitcoinBlock != [32]byte(p.Anchor.Block.Hash) {
		t.Fatalf("got %+v", v)
	}
	if len(v.Headers) != 3 || v.Tip != v.Headers[2] || v.Tip.Height != 3 || v.Headers[0].Height != 1 {
		t.Fatalf("headers %+v", v.Headers)
	}
	if !bytes.Equal(v.Tip.Header[:], p.Anchor.HeadersAfter[1].Header) {
		t.Fatal("tip is not the last header")
	}
}

func firstHeader(t *testing.T, data []byte) []byte {
	t.Helper()
	var pkt packet.TimestampPacket
	if err := pkt.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	return pkt.Headers[0]
}

func TestPacketErrors(t *testing.T) {
	base, _ := goldenPacket(t, "bitcoin-regtest-pos-block.json")
	trusted := TrustedHeader{Height: 0, Header: header80(t, regtestGenesis)}
	params := Params{SourceChains: []string{"cosmoshub-4"}, Network: Regtest, Tag: [4]byte{'B', 'T', 'C', 'T'}, K: 3}
	edit := func(f func(*packet.TimestampPacket)) []byte {
		var pkt packet.TimestampPacket
		if err := pkt.Unmarshal(base); err != nil {
			t.Fatal(err)
		}
		f(&pkt)
		data, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name    string
		data    []byte
		trusted TrustedHeader
		params  Params
		err     string
	}{
		{"garbage", []byte{0xff, 0xff}, trusted, params, "packet does not decode: "},
		{"unknown field", append(append([]byte{}, base...), 0x38, 0x01), trusted, params, "packet does not decode: not the canonical encoding"},
		{"version 2", edit(func(p *packet.TimestampPacket) { p.Version = 2 }), trusted, params, "packet version 2 is not supported"},
		{"no record", edit(func(p *packet.TimestampPacket) { p.Record = nil }), trusted, params, "record: missing"},
		{"short hash", edit(func(p *packet.TimestampPacket) { p.Record.BlockHash = p.Record.BlockHash[1:] }), trusted, params, "record: malformed chain id or hash"},
		{"foreign chain", base, trusted, Params{SourceChains: []string{"osmosis-1"}, Network: Regtest, Tag: params.Tag, K: 3}, "record: for chain cosmoshub-4, not osmosis-1"},
		{"no source chains", base, trusted, Params{Network: Regtest, Tag: params.Tag}, "record: for chain cosmoshub-4"},
		{"other record", edit(func(p *packet.TimestampPacket) { p.Record.Height++ }), trusted, params, "record: the proof is for another record"},
		{"proof not utf-8", edit(func(p *packet.TimestampPacket) { p.Proof = []byte{0xff} }), trusted, params, "proof: not UTF-8"},
		{"proof not canonical", edit(func(p *packet.TimestampPacket) { p.Proof = bytes.TrimSuffix(p.Proof, []byte("\n")) }), trusted, params, "proof: not the canonical JSON layout"},
		{"other network", base, trusted, Params{SourceChains: params.SourceChains, Network: LitecoinRegtest, Tag: params.Tag}, "proof: network: anchored on regtest, expected litecoin-regtest"},
		{"no headers", edit(func(p *packet.TimestampPacket) { p.Headers = nil }), trusted, params, "headers: 0 headers; 1 to 10000 are allowed"},
		{"gap after trusted", edit(func(p *packet.TimestampPacket) { p.FirstHeight = 2 }), trusted, params, "headers: they start at height 2, not right after the trusted header at 0"},
		{"trusted at the top", base, TrustedHeader{Height: ^uint32(0)}, params, "headers: they start at height 1"},
		{"short header", edit(func(p *packet.TimestampPacket) { p.Headers[1] = p.Headers[1][:79] }), trusted, params, "headers: header at height 2 is 79 bytes, not 80"},
		{"not linked", base, TrustedHeader{Height: 0, Header: header80(t, bitcoinGenesis)}, params, "headers: header at height 1 does not link to the one before it"},
		{"anchor before the headers", edit(func(p *packet.TimestampPacket) { p.Headers = p.Headers[1:]; p.FirstHeight = 2 }),
			TrustedHeader{Height: 1, Header: [80]byte(firstHeader(t, base))}, params, "the anchor block is not among the packet's headers"},
		{"too shallow", base, trusted, Params{SourceChains: params.SourceChains, Network: Regtest, Tag: params.Tag, K: 4}, "depth 3 is below the required 4"},
		{"false claim", edit(func(p *packet.TimestampPacket) { p.Depth = 5 }), trusted, params, "claimed depth 5 but the headers show 3"},
		{"headers after missing", edit(func(p *packet.TimestampPacket) { p.Headers = p.Headers[:2]; p.Depth = 2 }), trusted, params, "proof: its headers_after are not the packet's headers after the anchor block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyPacket(tt.data, tt.trusted, tt.params)
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Fatalf("got %v, want %q", err, tt.err)
			}
		})
	}
}
