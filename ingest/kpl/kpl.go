// Package kpl de-aggregates Kinesis records written by the Kinesis Producer
// Library (KPL). An aggregated record is the 4-byte magic F3 89 9A C2, a
// protobuf AggregatedRecord, and the MD5 of that protobuf:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// As in the KCL, a record that carries the magic but fails the checksum or
// does not decode is passed on whole, as an ordinary record.
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic prefixes every KPL-aggregated record.
var Magic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// UserRecord is one record the producer put, inside an aggregated record.
type UserRecord struct {
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
}

// Deaggregate returns the user records in data. ok is false when data is not
// a valid aggregated record, in which case the caller treats data as one
// ordinary record.
func Deaggregate(data []byte) (recs []UserRecord, ok bool) {
	if len(data) < len(Magic)+md5.Size || !bytes.HasPrefix(data, Magic) {
		return nil, false
	}
	body := data[len(Magic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, false
	}
	recs, err := decode(body)
	if err != nil {
		return nil, false
	}
	return recs, true
}

type rawRecord struct {
	pk, ehk uint64
	hasEHK  bool
	data    []byte
}

func decode(b []byte) ([]UserRecord, error) {
	var pks, ehks []string
	var raws []rawRecord
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case 1:
			pks = append(pks, string(v))
		case 2:
			ehks = append(ehks, string(v))
		case 3:
			r, err := decodeRecord(v)
			if err != nil {
				return nil, err
			}
			raws = append(raws, r)
		}
	}
	out := make([]UserRecord, len(raws))
	for i, r := range raws {
		if r.pk >= uint64(len(pks)) {
			return nil, fmt.Errorf("record %d: partition key index %d out of %d", i, r.pk, len(pks))
		}
		out[i] = UserRecord{PartitionKey: pks[r.pk], Data: r.data}
		if r.hasEHK {
			if r.ehk >= uint64(len(ehks)) {
				return nil, fmt.Errorf("record %d: hash key index %d out of %d", i, r.ehk, len(ehks))
			}
			out[i].ExplicitHashKey = ehks[r.ehk]
		}
	}
	return out, nil
}

func decodeRecord(b []byte) (rawRecord, error) {
	var r rawRecord
	var hasData bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			r.pk, n = protowire.ConsumeVarint(b)
		case num == 2 && typ == protowire.VarintType:
			r.ehk, n = protowire.ConsumeVarint(b)
			r.hasEHK = true
		case num == 3 && typ == protowire.BytesType:
			r.data, n = protowire.ConsumeBytes(b)
			hasData = true
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if !hasData {
		return r, errors.New("record without data")
	}
	return r, nil
}

// Aggregate builds an aggregated record the way the KPL does. qoslake's
// simulator and tests use it; the pipeline only de-aggregates.
func Aggregate(recs []UserRecord) []byte {
	var body []byte
	pkIndex := map[string]uint64{}
	var pkOrder []string
	for _, r := range recs {
		if _, ok := pkIndex[r.PartitionKey]; !ok {
			pkIndex[r.PartitionKey] = uint64(len(pkOrder))
			pkOrder = append(pkOrder, r.PartitionKey)
		}
	}
	for _, pk := range pkOrder {
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendString(body, pk)
	}
	for _, r := range recs {
		var rb []byte
		rb = protowire.AppendTag(rb, 1, protowire.VarintType)
		rb = protowire.AppendVarint(rb, pkIndex[r.PartitionKey])
		rb = protowire.AppendTag(rb, 3, protowire.BytesType)
		rb = protowire.AppendBytes(rb, r.Data)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, rb)
	}
	sum := md5.Sum(body)
	out := append(append([]byte{}, Magic...), body...)
	return append(out, sum[:]...)
}
