// Package ojson builds JSON documents whose key order is fixed by the
// builder, with Mesos' number formatting (doubles always with a fraction),
// for the /state endpoints that must look like Mesos'.
package ojson

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/tiltai/tiltai/localmesos/internal/protojson"
)

// Object is a JSON object with ordered keys.
type Object []KV

// KV is one member of an Object.
type KV struct {
	K string
	V any
}

// Raw is an already encoded JSON value.
type Raw []byte

// Double is a float64 written with a fraction, as Mesos writes doubles.
type Double float64

// Marshal renders v: Object, []any, []Object, []Raw, string, Double, float64
// (as Double), int, int64, uint32, uint64, bool, Raw, nil.
func Marshal(v any) []byte {
	var b bytes.Buffer
	write(&b, v)
	return b.Bytes()
}

func write(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case Object:
		b.WriteByte('{')
		for i, kv := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, kv.K)
			b.WriteByte(':')
			write(b, kv.V)
		}
		b.WriteByte('}')
	case []Object:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			write(b, e)
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			write(b, e)
		}
		b.WriteByte(']')
	case []Raw:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, e)
		}
		b.WriteByte(']')
	case string:
		writeString(b, x)
	case Double:
		b.WriteString(protojson.FormatDouble(float64(x)))
	case float64:
		b.WriteString(protojson.FormatDouble(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case uint32:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case Raw:
		b.Write(x)
	case nil:
		b.WriteString("null")
	default:
		data, err := json.Marshal(x)
		if err != nil {
			b.WriteString("null")
			return
		}
		b.Write(data)
	}
}

func writeString(b *bytes.Buffer, s string) {
	data, _ := json.Marshal(s)
	b.Write(data)
}
