package modelconfig

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
)

// Marshal writes cfg in protobuf text format, the format of config.pbtxt.
//
// Unlike prototext.Marshal, whose output is deliberately unstable, the
// result depends only on cfg: fields in declaration order, map entries
// sorted by key, two-space indentation, repeated scalars as [a, b] lists.
// Marshal(Parse(b)) == b for any b that Marshal produced.
func Marshal(cfg *inferencepb.ModelConfig) []byte {
	var w textWriter
	w.message(cfg.ProtoReflect(), 0)
	return []byte(w.String())
}

// Parse reads a config.pbtxt. Unknown fields are an error, so a file that
// uses a field this repository's proto subset does not declare fails here
// rather than being silently ignored.
func Parse(b []byte) (*inferencepb.ModelConfig, error) {
	var cfg inferencepb.ModelConfig
	if err := prototext.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

type textWriter struct{ strings.Builder }

func (w *textWriter) indent(depth int) {
	for range depth {
		w.WriteString("  ")
	}
}

// message writes the set fields of m, one per line.
func (w *textWriter) message(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			w.mapField(fd, v.Map(), depth)
		case fd.IsList():
			w.listField(fd, v.List(), depth)
		default:
			w.single(fd, v, depth)
		}
	}
}

// empty reports whether no field of m is set.
func empty(m protoreflect.Message) bool {
	set := false
	m.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool { set = true; return false })
	return !set
}

func (w *textWriter) single(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) {
	w.indent(depth)
	w.WriteString(string(fd.Name()))
	if fd.Kind() == protoreflect.MessageKind {
		if empty(v.Message()) {
			w.WriteString(" { }\n")
			return
		}
		w.WriteString(" {\n")
		w.message(v.Message(), depth+1)
		w.indent(depth)
		w.WriteString("}\n")
		return
	}
	w.WriteString(": ")
	w.scalar(fd, v)
	w.WriteString("\n")
}

func (w *textWriter) listField(fd protoreflect.FieldDescriptor, l protoreflect.List, depth int) {
	if fd.Kind() == protoreflect.MessageKind {
		w.indent(depth)
		w.WriteString(string(fd.Name()))
		w.WriteString(" [\n")
		for i := range l.Len() {
			w.indent(depth + 1)
			w.WriteString("{\n")
			w.message(l.Get(i).Message(), depth+2)
			w.indent(depth + 1)
			if i < l.Len()-1 {
				w.WriteString("},\n")
			} else {
				w.WriteString("}\n")
			}
		}
		w.indent(depth)
		w.WriteString("]\n")
		return
	}
	w.indent(depth)
	w.WriteString(string(fd.Name()))
	w.WriteString(": [ ")
	for i := range l.Len() {
		if i > 0 {
			w.WriteString(", ")
		}
		w.scalar(fd, l.Get(i))
	}
	w.WriteString(" ]\n")
}

func (w *textWriter) mapField(fd protoreflect.FieldDescriptor, m protoreflect.Map, depth int) {
	type entry struct {
		k protoreflect.MapKey
		s string
	}
	var entries []entry
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		entries = append(entries, entry{k, k.String()})
		return true
	})
	numeric := fd.MapKey().Kind() != protoreflect.StringKind
	sort.Slice(entries, func(i, j int) bool {
		if numeric {
			a, _ := strconv.ParseFloat(entries[i].s, 64)
			b, _ := strconv.ParseFloat(entries[j].s, 64)
			return a < b
		}
		return entries[i].s < entries[j].s
	})
	for _, e := range entries {
		w.indent(depth)
		w.WriteString(string(fd.Name()))
		w.WriteString(" {\n")
		w.single(fd.MapKey(), e.k.Value(), depth+1)
		w.single(fd.MapValue(), m.Get(e.k), depth+1)
		w.indent(depth)
		w.WriteString("}\n")
	}
}

func (w *textWriter) scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		w.WriteString(quote(v.String()))
	case protoreflect.BytesKind:
		w.WriteString(quote(string(v.Bytes())))
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			w.WriteString(string(ev.Name()))
		} else {
			w.WriteString(strconv.Itoa(int(v.Enum())))
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		w.WriteString(strconv.FormatFloat(v.Float(), 'g', -1, 64))
	default:
		w.WriteString(fmt.Sprint(v.Interface()))
	}
}

// quote writes s as a text-format string literal (ASCII; quotes,
// backslashes and control characters escaped).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
