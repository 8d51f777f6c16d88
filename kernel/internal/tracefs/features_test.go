package tracefs

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseFeatures(t *testing.T) {
	allInts := []string{"s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "x8", "x16", "x32", "x64"}
	for _, tc := range []struct {
		file string
		want Features
		// types that must (not) be listed
		types, notTypes []string
	}{
		{
			file: "README-6.18-uprobes-only.txt",
			want: Features{
				UprobeEvents: true, DynamicEvents: true,
				UprobeReturnSuffix: true, MaxActive: true, RefCtrOffset: true,
				ArgN: true, Comm: true, UserDeref: true, Immediates: true,
			},
			types:    append([]string{"char", "string", "symbol", "ustring", "symstr", "%pd", "%pD", "b<bit-width>@<bit-offset>/<container-size>", `<type>\[<array-size>\]`}, allInts...),
			notTypes: []string{"16", "pd"},
		},
		{
			file: "README-6.x-kprobes-uprobes.txt",
			want: Features{
				UprobeEvents: true, KprobeEvents: true, DynamicEvents: true,
				UprobeReturnSuffix: true, KprobeReturnSuffix: true, MaxActive: true, RefCtrOffset: true,
				ArgN: true, Comm: true, UserDeref: true, Immediates: true,
			},
			types: append([]string{"string", "ustring"}, allInts...),
		},
		{
			file: "README-6.x-kprobes-only.txt",
			want: Features{
				KprobeEvents: true, DynamicEvents: true,
				KprobeReturnSuffix: true, MaxActive: true,
				ArgN: true, Comm: true, UserDeref: true, Immediates: true,
			},
			types: append([]string{"string"}, allInts...),
		},
		{
			file: "README-4.19-kprobes-uprobes.txt",
			want: Features{
				UprobeEvents: true, KprobeEvents: true, MaxActive: true, Comm: true,
			},
			types:    append([]string{"string", "b<bit-width>@<bit-offset>/<container-size>"}, allInts...),
			notTypes: []string{"ustring", "symbol"},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := ParseFeatures(readTestdata(t, tc.file))
			if len(got.FetchArgs) == 0 {
				t.Errorf("no fetch-args parsed")
			}
			types, fetch := got.Types, got.FetchArgs
			got.Types, got.FetchArgs = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("features:\n got %+v\nwant %+v", got, tc.want)
			}
			got.Types = types
			for _, ty := range tc.types {
				if !got.HasType(ty) {
					t.Errorf("type %q missing from %q", ty, types)
				}
			}
			for _, ty := range tc.notTypes {
				if got.HasType(ty) {
					t.Errorf("type %q listed in %q", ty, types)
				}
			}
			if !slices.Contains(fetch, "$retval") || !slices.Contains(fetch, "$stack") {
				t.Errorf("fetch-args %q lack $retval or $stack", fetch)
			}
		})
	}
}

func TestParseFeaturesEmpty(t *testing.T) {
	var zero Features
	got := ParseFeatures("tracing mini-HOWTO:\n\n  trace\t\t- The static contents of the buffer\n")
	if got.UprobeEvents || got.KprobeEvents || len(got.Types) != 0 || got.ArgN {
		t.Errorf("features of a README without probes: %+v, want %+v", got, zero)
	}
}

func TestExpandTypes(t *testing.T) {
	for in, want := range map[string][]string{
		"s8/16/32/64": {"s8", "s16", "s32", "s64"},
		"%pd/%pD":     {"%pd", "%pD"},
		"string":      {"string"},
		"b<bit-width>@<bit-offset>/<container-size>": {"b<bit-width>@<bit-offset>/<container-size>"},
	} {
		if got := expandTypes(in); !slices.Equal(got, want) {
			t.Errorf("expandTypes(%q) = %q, want %q", in, got, want)
		}
	}
}
