package kpl_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/qoslake/qoslake/ingest/kpl"
)

func TestDeaggregateRoundTrip(t *testing.T) {
	in := []kpl.UserRecord{
		{PartitionKey: "user-1", Data: []byte(`{"metrictype":"play"}`)},
		{PartitionKey: "user-2", Data: []byte(`{"metrictype":"stop"}`)},
		{PartitionKey: "user-1", Data: []byte{}},
	}
	got, ok := kpl.Deaggregate(kpl.Aggregate(in))
	if !ok || len(got) != len(in) {
		t.Fatalf("ok=%v, %d records, want %d", ok, len(got), len(in))
	}
	for i := range in {
		if got[i].PartitionKey != in[i].PartitionKey || !bytes.Equal(got[i].Data, in[i].Data) {
			t.Errorf("record %d = %+v, want %+v", i, got[i], in[i])
		}
	}
}

// Bytes written by the KPL for two records with partition keys "a" and "b"
// (protobuf encoded by hand from the published .proto), so the decoder is
// not only checked against our own encoder.
func TestDeaggregateHandBuiltRecord(t *testing.T) {
	body := []byte{
		0x0a, 0x01, 'a', // partition_key_table: "a"
		0x0a, 0x01, 'b', // partition_key_table: "b"
		0x12, 0x01, '7', // explicit_hash_key_table: "7"
		0x1a, 0x07, 0x08, 0x00, 0x1a, 0x03, 'o', 'n', 'e', // record{pk 0, data "one"}
		0x1a, 0x09, 0x08, 0x01, 0x10, 0x00, 0x1a, 0x03, 't', 'w', 'o', // record{pk 1, ehk 0, data "two"}
	}
	sum := md5sum(body)
	data := append(append(append([]byte{}, kpl.Magic...), body...), sum...)
	got, ok := kpl.Deaggregate(data)
	if !ok {
		t.Fatal("not recognised as aggregated")
	}
	want := []kpl.UserRecord{{PartitionKey: "a", Data: []byte("one")}, {PartitionKey: "b", ExplicitHashKey: "7", Data: []byte("two")}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestNotAggregatedPassesThrough(t *testing.T) {
	good := kpl.Aggregate([]kpl.UserRecord{{PartitionKey: "k", Data: []byte("x")}})
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 0xff
	garbage := append(append([]byte{}, kpl.Magic...), bytes.Repeat([]byte{0xff}, 20)...)
	for name, data := range map[string][]byte{
		"plain json":   []byte(`{"metrictype":"play"}`),
		"bad checksum": corrupt,
		"short":        kpl.Magic,
		"bad protobuf": append(garbage, md5sum(garbage[4:])...),
	} {
		if _, ok := kpl.Deaggregate(data); ok {
			t.Errorf("%s: treated as aggregated", name)
		}
	}
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(kpl.Aggregate([]kpl.UserRecord{{PartitionKey: "k", Data: []byte("x")}}))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, ok := kpl.Deaggregate(data)
		if !ok && recs != nil {
			t.Fatal("records returned with ok=false")
		}
	})
}
