package verify

import "testing"

// Costs a module can charge gas by: go test ./verify -run '^$' -bench .

func BenchmarkCheckPoW(b *testing.B) {
	for _, n := range []Network{Regtest, LitecoinRegtest} {
		b.Run(string(n), func(b *testing.B) {
			h := header80(b, regtestGenesis)
			for i := 0; i < b.N; i++ {
				_ = CheckPoW(n, h)
			}
		})
	}
}

func BenchmarkVerifyPacket(b *testing.B) {
	bases := map[string][]byte{}
	for _, v := range loadVectors(b) {
		if v.Mutation.Kind != "none" {
			continue
		}
		s := vectorSetup(b, v, bases)
		b.Run(v.Base, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := VerifyPacket(s.data, s.trusted, s.params); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
