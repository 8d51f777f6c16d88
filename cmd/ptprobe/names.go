package main

import (
	"fmt"
	"os/exec"

	"github.com/ptprobe/ptprobe/backend"
	"github.com/ptprobe/ptprobe/engine"
	"github.com/ptprobe/ptprobe/resolve"
	"github.com/ptprobe/ptprobe/uprobe"
)

// expandSpecs binds the names of the specs (variable paths, $params,
// source lines, a typed $retval, a Go program's goid) once, for both
// backends, as perf probe rewrites a probe before the kernel sees it
// (docs/DESIGN.md §10). The program is argv[0], or the process pid.
// A USDT probe, glob or C++ name that asks for names is expanded
// first (resolve.Expand, docs/DESIGN.md §9, at most maxProbes probes;
// 0 is the default), so that each probe it means gets its own names.
func expandSpecs(specs []*uprobe.Spec, argv []string, pid, maxProbes int, warn func(error)) ([]*uprobe.Spec, error) {
	res := namesResolver(argv, pid)
	defer res.Close()
	var out []*uprobe.Spec
	names := make(map[string]string)
	for _, s := range specs {
		ex, err := bindNames(res, s, maxProbes, warn)
		if err != nil {
			return nil, err
		}
		if err := uniqueNames(names, s, ex); err != nil {
			return nil, err
		}
		out = append(out, ex...)
	}
	return out, nil
}

// uniqueNames refuses a probe that spec expanded to whose GROUP/EVENT a
// probe of another spec has (names holds each name taken, with the text
// of the spec that took it): the names an expansion makes (a source
// line's EVENT_1 for its second address, docs/DESIGN.md §10) are not in
// the specs the user wrote, whose names are checked before, and the
// events and counts of both probes would go by one name. It is the
// check the engine makes of the globs it expands (engine.ErrDuplicateName).
func uniqueNames(names map[string]string, spec *uprobe.Spec, expanded []*uprobe.Spec) error {
	for _, e := range expanded {
		if prev, ok := names[e.Probe()]; ok && prev != spec.Text {
			return fmt.Errorf("probe %q: %w: it names %s, as %q does (name the probes with p:GROUP/EVENT)", spec.Text, engine.ErrDuplicateName, e.Probe(), prev)
		}
	}
	for _, e := range expanded {
		names[e.Probe()] = spec.Text
	}
	return nil
}

// bindNames expands s (resolve.Expand) when it asks for names, then binds
// the names of each probe (resolve.BindNames). Other globs, USDT probes
// and C++ names the backends expand, checking the names across specs.
func bindNames(res *resolve.Resolver, s *uprobe.Spec, maxProbes int, warn func(error)) ([]*uprobe.Spec, error) {
	pre := []*uprobe.Spec{s}
	if resolve.NeedsNames(s) || (s.IsGlob() || s.USDT) && isGo(res, s) {
		// Expanded here, not by the backends: each probe it means
		// gets its own names, and in a Go program its goid.
		var err error
		if pre, err = res.Expand(s, &resolve.ExpandOptions{MaxProbes: maxProbes, Warn: warn}); err != nil {
			return nil, err
		}
	}
	var out []*uprobe.Spec
	for _, p := range pre {
		ex, err := res.BindNames(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ex...)
	}
	return out, nil
}

// isGo reports whether the file spec probes is a Go program (whose
// probes get a goid, docs/DESIGN.md §10).
func isGo(res *resolve.Resolver, s *uprobe.Spec) bool {
	if s.Kernel {
		return false
	}
	f, err := res.File(s)
	return err == nil && f.IsGo()
}

// namesResolver is a Resolver for the program argv[0], or the process pid.
func namesResolver(argv []string, pid int) *resolve.Resolver {
	opts := &resolve.Options{}
	switch {
	case pid != 0:
		// Its own libraries and root (a process in a container).
		opts = resolve.ProcessOptions(pid)
	case len(argv) > 0:
		if path, err := exec.LookPath(argv[0]); err == nil {
			opts.Program = path
		}
	}
	return resolve.New(opts)
}

// expandProbes expands the specs of req's probes in place; an expanded
// probe keeps its handlers.
func expandProbes(req *backend.Request, argv []string, pid int) error {
	res := namesResolver(argv, pid)
	defer res.Close()
	var probes []backend.Probe
	names := make(map[string]string)
	for _, p := range req.Probes {
		ex, err := bindNames(res, p.Spec, req.MaxProbes, req.Warn)
		if err != nil {
			return err
		}
		if err := uniqueNames(names, p.Spec, ex); err != nil {
			return err
		}
		for _, s := range ex {
			q := p
			q.Spec = s
			probes = append(probes, q)
		}
	}
	req.Probes = probes
	return nil
}
