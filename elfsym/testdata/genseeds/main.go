//go:build ignore

// Command genseeds writes the seed corpus of FuzzOpen into
// testdata/fuzz/FuzzOpen: small ELF files built with gcc (static with
// .symtab and .eh_frame_hdr, stripped, without .eh_frame_hdr, a shared
// library with symbol versions and an IFUNC), truncations of them and of
// /bin/ls, and a text file. Each seed stays under 20 KB.
//
// Run from the elfsym directory: go run testdata/genseeds/main.go
package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
)

const tinyC = `static int helper(int x) { return x * 7 + 1; }
int work(int n) { int s = 0; for (int i = 0; i < n; i++) s += helper(i); return s; }
void _start(void) {
	int r = work(3);
	__asm__ volatile("mov %0, %%edi\n mov $60, %%eax\n syscall" :: "r"(r) : "rdi", "rax");
	for (;;) {}
}
`

const libC = `int foo_v1(int x) { return x + 1; }
int foo_v2(int x) { return x + 2; }
__asm__(".symver foo_v1,foo@VERS_1");
__asm__(".symver foo_v2,foo@@VERS_2");
int bar(int x) { return foo_v2(x) * 3; }
__attribute__((ifunc("resolve_baz"))) int baz(int);
static int baz_impl(int x) { return x; }
static void *resolve_baz(void) { return (void *)baz_impl; }
`

const libMap = "VERS_1 { global: foo; bar; baz; local: *; };\nVERS_2 { global: foo; } VERS_1;\n"

func main() {
	tmp, err := os.MkdirTemp("", "genseeds")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	write := func(name, text string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			log.Fatal(err)
		}
		return p
	}
	sh := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			log.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			log.Fatal(err)
		}
		return b
	}
	tiny, lib := write("tiny.c", tinyC), write("lib.c", libC)
	mapf := write("lib.map", libMap)
	small := []string{"-Os", "-fno-stack-protector", "-Wl,--build-id=none", "-Wl,-z,norelro",
		"-Wl,-z,noseparate-code", "-Wl,-z,max-page-size=0x1000"}
	out := func(n string) string { return filepath.Join(tmp, n) }
	sh("gcc", append(small, "-Wl,-n", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-Wl,--eh-frame-hdr", "-o", out("static"), tiny)...)
	sh("strip", "-o", out("static-stripped"), out("static"))
	sh("gcc", append(small, "-Wl,-n", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-Wl,--no-eh-frame-hdr", "-o", out("static-nohdr"), tiny)...)
	sh("strip", "-o", out("static-nohdr-stripped"), out("static-nohdr"))
	sh("gcc", append(small, "-fPIC", "-shared", "-nostdlib", "-Wl,-soname,libseed.so.1", "-Wl,--version-script="+mapf, "-o", out("shared"), lib)...)
	sh("strip", "-o", out("shared-stripped"), out("shared"))

	seeds := map[string][]byte{}
	for _, n := range []string{"static", "static-stripped", "static-nohdr-stripped", "shared", "shared-stripped"} {
		seeds[n] = read(out(n))
	}
	seeds["static-64"] = seeds["static"][:64]
	seeds["static-600"] = seeds["static"][:600]
	seeds["shared-2048"] = seeds["shared"][:2048]
	if ls, err := os.ReadFile("/bin/ls"); err == nil {
		seeds["ls-4k"] = ls[:4096]
	}
	seeds["text"] = []byte("not an ELF file\n")

	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, data := range seeds {
		if len(data) > 20000 || len(fmt.Sprintf("%q", data)) > 20000 {
			log.Fatalf("seed %s: %d bytes", name, len(data))
		}
		text := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
