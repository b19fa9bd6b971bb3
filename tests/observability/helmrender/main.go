// helmrender renders a Helm chart's templates the way `helm template` does, for tests on
// machines without the helm binary (Debian 12 does not package it).
//
// It uses the same engine as Helm: Go's text/template with the sprig functions, plus Helm's own
// include, required, toYaml, fromYaml and .Files.Get; values are decoded the way Helm decodes
// them (every number a float64). It does not talk to a cluster and knows no .Capabilities.
//
// Usage: helmrender CHART_DIR [-f values.yaml]... > manifests.yaml
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type files struct{ root string }

func (f files) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(f.root, name))
	if err != nil {
		return ""
	}
	return string(data)
}

// normalize turns yaml.v3's ints into float64 and map keys into strings, as Helm's JSON-based
// decoding does.
func normalize(v interface{}) interface{} {
	switch x := v.(type) {
	case map[string]interface{}:
		for k, val := range x {
			x[k] = normalize(val)
		}
		return x
	case map[interface{}]interface{}:
		out := map[string]interface{}{}
		for k, val := range x {
			out[fmt.Sprint(k)] = normalize(val)
		}
		return out
	case []interface{}:
		for i, val := range x {
			x[i] = normalize(val)
		}
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return v
}

func load(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return normalize(out).(map[string]interface{}), nil
}

// merge lays src over dst; a null in src deletes the key, as Helm's coalescing does.
func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func toYaml(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func fromYaml(s string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &out); err != nil {
		out["Error"] = err.Error()
	}
	return normalize(out).(map[string]interface{})
}

func run(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: helmrender CHART_DIR [-f values.yaml]...")
	}
	chartDir := args[0]
	values, err := load(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for i := 1; i < len(args); i++ {
		if args[i] != "-f" || i+1 >= len(args) {
			return fmt.Errorf("unexpected argument %q", args[i])
		}
		extra, err := load(args[i+1])
		if err != nil {
			return err
		}
		merge(values, extra)
		i++
	}
	chartMeta, err := load(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	chart := map[string]interface{}{
		"Name": chartMeta["name"], "Version": chartMeta["version"], "AppVersion": chartMeta["appVersion"],
	}
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   chart,
		"Release": map[string]interface{}{"Name": "tm", "Namespace": "default", "Service": "Helm", "IsInstall": true},
		"Files":   files{chartDir},
	}

	tpl := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = fromYaml
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := tpl.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	tpl.Funcs(funcs)

	paths, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, err := tpl.New(filepath.Base(p)).Parse(string(data)); err != nil {
			return err
		}
	}
	for _, p := range paths {
		name := filepath.Base(p)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var buf bytes.Buffer
		if err := tpl.ExecuteTemplate(&buf, name, top); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if name == "NOTES.txt" {
			fmt.Printf("---\n# NOTES\n%s\n", "# "+strings.ReplaceAll(text, "\n", "\n# "))
			continue
		}
		fmt.Printf("---\n# Source: templates/%s\n%s\n", name, text)
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "helmrender:", err)
		os.Exit(1)
	}
}
