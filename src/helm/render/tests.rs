//! The engine end to end on small inline charts.

use std::sync::Arc;

use super::chart::{File, parts_from_files};
use super::*;

fn chart(files: &[(&str, &str)]) -> Chart {
    let files = files.iter().map(|(n, t)| File { name: n.to_string(), data: Arc::from(t.as_bytes()) }).collect();
    Chart::from_parts(parts_from_files(files).unwrap())
}

const CHART_YAML: &str = "apiVersion: v2\nname: t\nversion: 1.2.3\nappVersion: \"4.5\"\n";

/// Renders one template (with `values`) and returns its output.
fn run(template: &str, values: &str) -> Result<String, RenderError> {
    let c = chart(&[("Chart.yaml", CHART_YAML), ("values.yaml", values), ("templates/x.yaml", template)]);
    let out = render(&c, &Options::default())?;
    Ok(out.into_iter().find(|(k, _)| k == "t/templates/x.yaml").map(|(_, v)| v).unwrap_or_default())
}

fn ok(template: &str) -> String {
    run(template, "").unwrap()
}

#[test]
fn trimming_and_comments() {
    assert_eq!(ok("a  \n  {{- \"b\" -}}  \n  c"), "abc");
    assert_eq!(ok("a {{/* gone */}} b {{- /* gone */}} c"), "a  b c");
    assert_eq!(ok("{{ 3 }} {{-3}}"), "3 -3");
}

#[test]
fn ranges_over_maps_in_key_order_with_break_and_else() {
    assert_eq!(
        run("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}", "m: {b: 2, a: 1, c: 3}").unwrap(),
        "a=1;b=2;c=3;"
    );
    assert_eq!(ok("{{ range $i, $e := list 5 6 7 }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $e }}{{ end }}"), "56");
    assert_eq!(ok("{{ range list 1 2 3 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}"), "13");
    assert_eq!(ok("{{ range .Values.none }}x{{ else }}empty{{ end }}"), "empty");
    assert_eq!(ok("{{ range 3 }}{{ . }}{{ end }}"), "012");
}

#[test]
fn and_or_short_circuit_and_return_operands() {
    assert_eq!(ok("{{ or .Values.missing \"d\" }}|{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 \"\" }}"), "d|0|2|");
    // The right side of a short-circuit is never evaluated (it would fail).
    assert_eq!(ok("{{ if or true (fail \"no\") }}y{{ end }}"), "y");
    assert_eq!(ok("{{ if and false (fail \"no\") }}y{{ else }}n{{ end }}"), "n");
}

#[test]
fn printf_verbs_and_values_from_yaml() {
    assert_eq!(
        run(
            "{{ printf \"%s:%v:%d:%q:%t:%x:%5s|%-3d|\" .Values.s .Values.num 7 \"q\" true 255 \"ab\" 4 }}",
            "s: a\nnum: 8080"
        )
        .unwrap(),
        "a:8080:7:\"q\":true:ff:   ab|4  |"
    );
    assert_eq!(
        run("{{ .Values.big }}|{{ .Values.num | int }}|{{ printf \"%d\" .Values.num }}", "big: 1000000\nnum: 3")
            .unwrap(),
        "1e+06|3|%!d(float64=3)"
    );
}

#[test]
fn missing_keys_and_nil_pointers() {
    assert_eq!(ok("[{{ .Values.nope }}]"), "[]");
    let err = run("{{ .Values.a.b }}", "").unwrap_err().to_string();
    assert!(err.contains("nil pointer evaluating interface {}.b"), "{err}");
    assert!(err.contains("t/templates/x.yaml:1:"), "{err}");
    // A variable holding "no value" yields no value for its fields, as in Go.
    assert_eq!(ok("{{ $x := .Values.a }}[{{ $x.b }}]"), "[]");
}

#[test]
fn tpl_include_define_and_recursion_limit() {
    let c = chart(&[
        ("Chart.yaml", CHART_YAML),
        ("values.yaml", "name: world\ntext: 'hi {{ .Values.name }} {{ include \"t.x\" . }}'\n"),
        (
            "templates/_h.tpl",
            "{{- define \"t.x\" -}}X{{ .Chart.Name }}{{- end -}}\n{{- define \"loop\" }}{{ include \"loop\" . }}{{ end }}",
        ),
        (
            "templates/a.yaml",
            "{{ tpl .Values.text . }}|{{ tpl \"{{ define \\\"in\\\" }}I{{ end }}{{ include \\\"in\\\" . }}\" . }}|{{ template \"t.x\" . }}",
        ),
    ]);
    let out = render(&c, &Options::default()).unwrap();
    assert_eq!(out[0].1, "hi world Xt|I|Xt");
    let c = chart(&[
        ("Chart.yaml", CHART_YAML),
        ("templates/_h.tpl", "{{- define \"loop\" }}{{ include \"loop\" . }}{{ end }}"),
        ("templates/a.yaml", "{{ include \"loop\" . }}"),
    ]);
    let err = render(&c, &Options::default()).unwrap_err().to_string();
    assert!(err.contains("rendering template has a nested reference name: loop"), "{err}");
}

#[test]
fn mutual_recursion_stops_at_the_depth_limit() {
    // Six templates calling each other in a ring: each name stays under Helm's 1000, the
    // nesting limit stops it, within the render thread's stack.
    let defs: String = (0..6)
        .map(|i| format!("{{{{- define \"r{i}\" }}}}{{{{ include \"r{}\" . }}}}{{{{ end }}}}\n", (i + 1) % 6))
        .collect();
    let c = chart(&[
        ("Chart.yaml", CHART_YAML),
        ("templates/_r.tpl", &defs),
        ("templates/a.yaml", "{{ include \"r0\" . }}"),
    ]);
    let err = render(&c, &Options::default()).unwrap_err().to_string();
    assert!(err.contains("exceeded maximum template depth"), "{}", &err[..err.len().min(300)]);
}

#[test]
fn required_and_fail_carry_file_line_and_message() {
    let err = run("a\n  {{ required \"need x\" .Values.x }}", "").unwrap_err().to_string();
    assert_eq!(err, "error rendering chart t: execution error at (t/templates/x.yaml:2:5): need x");
    let err = run("{{ fail \"stop\" }}", "").unwrap_err().to_string();
    assert!(err.ends_with("execution error at (t/templates/x.yaml:1:3): stop"), "{err}");
    assert_eq!(run("{{ required \"n\" .Values.x }}", "x: false").unwrap(), "false");
}

#[test]
fn to_yaml_round_trips_through_templates() {
    let values = "cfg:\n  b: [1, 'two', {c: 'yes'}]\n  a: \"multi\\nline\"\n  t: '{{ x }}'\n";
    let out =
        run("cfg:\n{{ toYaml .Values.cfg | indent 2 }}\nback: {{ .Values.cfg | toYaml | fromYaml | toJson }}", values)
            .unwrap();
    let parsed = yaml_in::parse_value(&out).unwrap();
    let cfg = yaml_out::to_json(&parsed.get("cfg").unwrap(), false, false).unwrap();
    assert_eq!(cfg, r#"{"a":"multi\nline","b":[1,"two",{"c":"yes"}],"t":"{{ x }}"}"#);
    assert_eq!(parsed.get("back").unwrap().get("b").and_then(|b| b.as_slice().map(|l| l.len())), Some(3));
}

#[test]
fn helm_objects() {
    let c = chart(&[
        ("Chart.yaml", CHART_YAML),
        ("files/a.conf", "x=1\n"),
        (
            "templates/x.yaml",
            "{{ .Chart.Name }}-{{ .Chart.AppVersion }}|{{ .Release.Service }}|{{ .Template.Name }}|{{ .Template.BasePath }}|{{ .Capabilities.KubeVersion.Version }}|{{ .Capabilities.KubeVersion.GitVersion }}|{{ .Capabilities.APIVersions.Has \"apps/v1\" }}|{{ .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" }}|{{ .Files.Get \"files/a.conf\" | trim }}|{{ range $p, $_ := .Files.Glob \"files/*\" }}{{ $p }}{{ end }}|{{ (.Files.Glob \"files/*\").AsConfig | trim }}|{{ semverCompare \">=1.19-0\" .Capabilities.KubeVersion.GitVersion }}|{{ lookup \"v1\" \"Secret\" \"ns\" \"n\" | len }}",
        ),
    ]);
    let out = render(&c, &Options::default()).unwrap();
    assert_eq!(
        out[0].1,
        "t-4.5|Helm|t/templates/x.yaml|t/templates|v1.20.0|v1.20.0|true|false|x=1|files/a.conf|a.conf: |\n  x=1|true|0"
    );
}

#[test]
fn images_skip_hooks_tagless_and_notes() {
    let c = chart(&[
        ("Chart.yaml", CHART_YAML),
        ("values.yaml", "image: {repo: r.io/app, tag: \"\"}\n"),
        ("templates/NOTES.txt", "{{ .Chart.Name }}"),
        (
            "templates/d.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      initContainers: [{image: busybox}]\n      containers:\n      - image: \"{{ .Values.image.repo }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  annotations: {helm.sh/hook: test}\nspec:\n  containers: [{image: 'hook:1'}]\n",
        ),
        ("templates/cr.yaml", "kind: Thing\nspec:\n  image: cr.io/x:1\n"),
        ("crds/c.yaml", "kind: Pod\nspec:\n  containers: [{image: 'crd:2'}]\n"),
    ]);
    assert_eq!(images(&c, &[]).unwrap(), ["crd:2", "r.io/app:4.5"]);
    assert_eq!(images(&c, &["{.spec.image}".to_string()]).unwrap(), ["cr.io/x:1", "crd:2", "r.io/app:4.5"]);
}

#[test]
fn disabled_subcharts_and_subchart_scopes() {
    let sub = "apiVersion: v2\nname: sub\nversion: 0.1.0\n";
    let c = chart(&[
        (
            "Chart.yaml",
            "apiVersion: v2\nname: t\nversion: 1.0.0\ndependencies:\n- {name: sub, version: 0.1.0, condition: sub.enabled}\n- {name: web, version: 0.1.0}\n",
        ),
        ("values.yaml", "sub: {enabled: false}\nweb: {tag: parent}\nglobal: {reg: g.io}\n"),
        ("charts/sub/Chart.yaml", sub),
        ("charts/sub/templates/p.yaml", "kind: Pod\nspec: {containers: [{image: 'sub:1'}]}\n"),
        ("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"),
        ("charts/web/values.yaml", "tag: own\nrepo: web\n"),
        (
            "charts/web/templates/p.yaml",
            "kind: Pod\nspec: {containers: [{image: '{{ .Values.global.reg }}/{{ .Values.repo }}:{{ .Values.tag }}'}]}\n# {{ .Template.Name }}\n",
        ),
    ]);
    assert_eq!(images(&c, &[]).unwrap(), ["g.io/web:parent"]);
    let out = render(&c, &Options::default()).unwrap();
    assert!(
        out.iter().any(|(k, v)| k == "t/charts/web/templates/p.yaml" && v.contains("# t/charts/web/templates/p.yaml"))
    );
}
