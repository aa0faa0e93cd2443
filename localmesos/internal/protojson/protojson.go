package protojson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// field describes one protobuf field of a generated gogo struct, read once
// from its struct tags.
type field struct {
	index    int
	name     string // protobuf field name, as Mesos spells it in JSON
	required bool
	enum     bool
	typ      reflect.Type
}

var fieldCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) []field {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]field)
	}
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("protobuf")
		if tag == "" || !sf.IsExported() {
			continue
		}
		f := field{index: i, typ: sf.Type}
		for _, part := range strings.Split(tag, ",") {
			switch {
			case part == "req":
				f.required = true
			case strings.HasPrefix(part, "name="):
				f.name = part[len("name="):]
			case strings.HasPrefix(part, "enum="):
				f.enum = true
			}
		}
		if f.name != "" {
			fs = append(fs, f)
		}
	}
	fieldCache.Store(t, fs)
	return fs
}

// Marshal encodes a generated protobuf message (a pointer to a gogo struct)
// the way Mesos' own JSON writer does: fields in declaration order, unset
// optional fields left out, enums by name (a value unknown to the v1 enum is
// dropped), doubles always with a fraction ("15.0"), 64-bit integers as
// numbers, bytes as standard base64.
func Marshal(msg any) ([]byte, error) {
	v := reflect.ValueOf(msg)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, errors.New("cannot encode a nil message")
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("cannot encode %s: not a protobuf message", v.Type())
	}
	var b bytes.Buffer
	b.Grow(256)
	if err := encodeStruct(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeStruct(b *bytes.Buffer, v reflect.Value) error {
	b.WriteByte('{')
	first := true
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		if !present(fv, f) {
			continue
		}
		// An enum value outside the v1 enum has no name: Mesos drops it.
		if f.enum && !enumKnown(fv) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(b, f.name)
		b.WriteByte(':')
		if err := encodeValue(b, fv, f.enum); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	b.WriteByte('}')
	return nil
}

// present reports whether a field is set. Nullable fields are pointers or
// slices; for non-nullable ones (gogoproto.nullable=false) a required field is
// always written and an optional one only when it is not the zero value.
func present(fv reflect.Value, f field) bool {
	switch fv.Kind() {
	case reflect.Pointer, reflect.Interface:
		return !fv.IsNil()
	case reflect.Slice:
		if fv.Type().Elem().Kind() == reflect.Uint8 {
			return !fv.IsNil()
		}
		return fv.Len() > 0
	case reflect.Map:
		return fv.Len() > 0
	}
	if f.required {
		return true
	}
	return !fv.IsZero()
}

func enumKnown(v reflect.Value) bool {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() == reflect.Slice {
		return true
	}
	s, ok := v.Interface().(fmt.Stringer)
	if !ok {
		return true
	}
	_, err := strconv.Atoi(s.String())
	return err != nil
}

func encodeValue(b *bytes.Buffer, v reflect.Value, enum bool) error {
	switch v.Kind() {
	case reflect.Pointer:
		return encodeValue(b, v.Elem(), enum)
	case reflect.Struct:
		return encodeStruct(b, v)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b.WriteByte('"')
			b.WriteString(base64.StdEncoding.EncodeToString(v.Bytes()))
			b.WriteByte('"')
			return nil
		}
		b.WriteByte('[')
		n := 0
		for i := 0; i < v.Len(); i++ {
			ev := v.Index(i)
			if enum && !enumKnown(ev) {
				continue
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			if err := encodeValue(b, ev, enum); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case reflect.Map:
		keys := v.MapKeys()
		strs := make([]string, len(keys))
		for i, k := range keys {
			strs[i] = k.String()
		}
		sortStrings(strs)
		b.WriteByte('{')
		for i, k := range strs {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := encodeValue(b, v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())), false); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case reflect.String:
		writeString(b, v.String())
	case reflect.Bool:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Int32, reflect.Int64, reflect.Int:
		if enum {
			writeString(b, v.Interface().(fmt.Stringer).String())
			return nil
		}
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint32, reflect.Uint64:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float64:
		b.WriteString(FormatDouble(v.Float()))
	case reflect.Float32:
		b.WriteString(formatFloat(v.Float(), 32))
	default:
		return fmt.Errorf("cannot encode a value of kind %s", v.Kind())
	}
	return nil
}

// FormatDouble writes a double the way Mesos' JSON writer does: the shortest
// representation that reads back to the same value, always with a fraction.
func FormatDouble(f float64) string { return formatFloat(f, 64) }

func formatFloat(f float64, bits int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// JSON has no literal for these; Mesos writes null.
		return "null"
	}
	s := strconv.FormatFloat(f, 'f', -1, bits)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

const hex = "0123456789abcdef"

// writeString quotes s as JSON without escaping <, > and & (unlike
// encoding/json), as Mesos does; invalid UTF-8 becomes U+FFFD.
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(`\ufffd`)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}

// A ConvertError says a JSON document could not become the protobuf message:
// required fields are missing or a value has the wrong JSON type. Its text
// follows Mesos ("Missing required fields: a.b[0].c").
type ConvertError struct {
	Missing []string
	Problem string
}

func (e *ConvertError) Error() string {
	if e.Problem != "" {
		return e.Problem
	}
	return "Missing required fields: " + strings.Join(e.Missing, ", ")
}

// A SyntaxError says the body is not JSON at all.
type SyntaxError struct{ Err error }

func (e *SyntaxError) Error() string { return e.Err.Error() }
func (e *SyntaxError) Unwrap() error { return e.Err }

// MaxDepth bounds the nesting of a document Unmarshal accepts, so a hostile
// body cannot drive deep recursion.
const MaxDepth = 64

// Unmarshal decodes a JSON document into a generated protobuf message the way
// Mesos converts JSON into protobuf: unknown fields are ignored, an enum name
// the v1 enum does not know leaves the field unset, and every required field
// of every present message must be there (all missing ones are listed).
func Unmarshal(data []byte, msg any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return &SyntaxError{Err: err}
	}
	if dec.More() {
		return &SyntaxError{Err: errors.New("trailing data after the JSON document")}
	}
	v := reflect.ValueOf(msg)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("cannot decode into %T: not a pointer to a protobuf message", msg)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return &ConvertError{Problem: "Expecting a JSON object"}
	}
	d := decoder{}
	v.Elem().SetZero()
	d.decodeStruct(obj, v.Elem(), "", 0)
	if d.problem != "" {
		return &ConvertError{Problem: d.problem}
	}
	if len(d.missing) > 0 {
		return &ConvertError{Missing: d.missing}
	}
	return nil
}

type decoder struct {
	missing []string
	problem string
}

func (d *decoder) fail(path, format string, args ...any) {
	if d.problem == "" {
		d.problem = fmt.Sprintf("Invalid value for field '%s': %s", path, fmt.Sprintf(format, args...))
	}
}

// notExpecting is stout's text for a scalar where a message belongs: it
// names the field, not its path (recording 13: "Not expecting a JSON
// string for field 'max_grace_period'").
func (d *decoder) notExpecting(raw any, path string) {
	kind := ""
	switch raw.(type) {
	case string:
		kind = "string"
	case bool:
		kind = "boolean"
	case json.Number, float64:
		kind = "number"
	default:
		d.fail(path, "expecting a JSON object")
		return
	}
	name := path[strings.LastIndex(path, ".")+1:]
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	if d.problem == "" {
		d.problem = fmt.Sprintf("Not expecting a JSON %s for field '%s'", kind, name)
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (d *decoder) decodeStruct(obj map[string]any, v reflect.Value, path string, depth int) {
	if depth > MaxDepth {
		d.fail(path, "nested too deeply")
		return
	}
	for _, f := range fieldsOf(v.Type()) {
		raw, ok := obj[f.name]
		if ok && raw == nil {
			ok = false
		}
		p := join(path, f.name)
		if ok {
			ok = d.decodeField(raw, v.Field(f.index), f, p, depth)
		}
		if !ok && f.required {
			d.missing = append(d.missing, p)
		}
	}
}

// decodeField sets one field and reports whether it ended up set.
func (d *decoder) decodeField(raw any, fv reflect.Value, f field, path string, depth int) bool {
	t := fv.Type()
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		arr, ok := raw.([]any)
		if !ok {
			d.fail(path, "expecting a JSON array")
			return false
		}
		out := reflect.MakeSlice(t, 0, len(arr))
		for i, el := range arr {
			ev := reflect.New(t.Elem()).Elem()
			if d.decodeValue(el, ev, f.enum, fmt.Sprintf("%s[%d]", path, i), depth+1) {
				out = reflect.Append(out, ev)
			}
		}
		fv.Set(out)
		return true
	case t.Kind() == reflect.Map:
		obj, ok := raw.(map[string]any)
		if !ok {
			d.fail(path, "expecting a JSON object")
			return false
		}
		m := reflect.MakeMapWithSize(t, len(obj))
		for k, el := range obj {
			ev := reflect.New(t.Elem()).Elem()
			if d.decodeValue(el, ev, false, path+"."+k, depth+1) {
				m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
			}
		}
		fv.Set(m)
		return true
	case t.Kind() == reflect.Pointer:
		ev := reflect.New(t.Elem())
		if !d.decodeValue(raw, ev.Elem(), f.enum, path, depth+1) {
			return false
		}
		fv.Set(ev)
		return true
	}
	return d.decodeValue(raw, fv, f.enum, path, depth+1)
}

func (d *decoder) decodeValue(raw any, v reflect.Value, enum bool, path string, depth int) bool {
	if depth > MaxDepth {
		d.fail(path, "nested too deeply")
		return false
	}
	switch v.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			d.notExpecting(raw, path)
			return false
		}
		d.decodeStruct(obj, v, path, depth)
		return true
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.fail(path, "expecting a JSON string")
			return false
		}
		v.SetString(s)
		return true
	case reflect.Bool:
		bv, ok := raw.(bool)
		if !ok {
			d.fail(path, "expecting a JSON boolean")
			return false
		}
		v.SetBool(bv)
		return true
	case reflect.Slice: // bytes
		s, ok := raw.(string)
		if !ok {
			d.fail(path, "expecting a base64 JSON string")
			return false
		}
		data, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			d.fail(path, "not valid base64")
			return false
		}
		v.SetBytes(data)
		return true
	case reflect.Int32, reflect.Int64:
		if enum {
			s, ok := raw.(string)
			if !ok {
				d.fail(path, "expecting an enum name")
				return false
			}
			n, ok := enumValue(v.Type(), s)
			if !ok {
				// Mesos leaves an unknown enum unset.
				return false
			}
			v.SetInt(int64(n))
			return true
		}
		n, ok := number(raw)
		if !ok {
			d.fail(path, "expecting a JSON number")
			return false
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
				d.fail(path, "expecting an integer")
				return false
			}
			i = int64(f)
		}
		if v.OverflowInt(i) {
			d.fail(path, "integer out of range")
			return false
		}
		v.SetInt(i)
		return true
	case reflect.Uint32, reflect.Uint64:
		n, ok := number(raw)
		if !ok {
			d.fail(path, "expecting a JSON number")
			return false
		}
		u, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f < 0 || f != math.Trunc(f) || f > 1<<63 {
				d.fail(path, "expecting a non-negative integer")
				return false
			}
			u = uint64(f)
		}
		if v.OverflowUint(u) {
			d.fail(path, "integer out of range")
			return false
		}
		v.SetUint(u)
		return true
	case reflect.Float64, reflect.Float32:
		n, ok := number(raw)
		if !ok {
			d.fail(path, "expecting a JSON number")
			return false
		}
		f, err := n.Float64()
		if err != nil {
			d.fail(path, "not a number")
			return false
		}
		v.SetFloat(f)
		return true
	}
	d.fail(path, "unsupported field type %s", v.Type())
	return false
}

func number(raw any) (json.Number, bool) {
	switch n := raw.(type) {
	case json.Number:
		return n, true
	case string:
		// Mesos accepts numbers quoted as strings for 64-bit fields.
		if _, err := strconv.ParseFloat(n, 64); err == nil {
			return json.Number(n), true
		}
	}
	return "", false
}

var enumCache sync.Map // reflect.Type -> map[string]int32

// enumValue finds the value of an enum name by asking the generated String
// method of each candidate value; gogo enums are small, so the table is
// built once per type by probing a bounded range.
func enumValue(t reflect.Type, name string) (int32, bool) {
	var table map[string]int32
	if c, ok := enumCache.Load(t); ok {
		table = c.(map[string]int32)
	} else {
		table = map[string]int32{}
		for i := int64(-1); i < 1024; i++ {
			ev := reflect.New(t).Elem()
			ev.SetInt(i)
			s, ok := ev.Interface().(fmt.Stringer)
			if !ok {
				break
			}
			str := s.String()
			if _, err := strconv.Atoi(str); err != nil {
				table[str] = int32(i)
			}
		}
		enumCache.Store(t, table)
	}
	n, ok := table[name]
	return n, ok
}
