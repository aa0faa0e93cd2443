package pipeline

import "testing"

func TestTally(t *testing.T) {
	tests := []struct {
		seqs []uint64
		want Counts
	}{
		{[]uint64{0, 1, 2}, Counts{Received: 3}},
		{[]uint64{2, 0, 1}, Counts{Received: 3}},
		{[]uint64{0, 2}, Counts{Received: 2, Missing: 1}},
		{[]uint64{0, 0, 1, 5, 5}, Counts{Received: 5, Duplicates: 2, Missing: 3}},
		{[]uint64{3}, Counts{Received: 1, Missing: 3}},
	}
	for _, tt := range tests {
		tl := &tally{seen: map[uint64]struct{}{}}
		for _, s := range tt.seqs {
			tl.add(s)
		}
		if got := tl.counts(); got != tt.want {
			t.Errorf("%v: got %+v, want %+v", tt.seqs, got, tt.want)
		}
	}
}
