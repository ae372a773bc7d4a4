package docs

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// TestRepositoryLinks checks every relative link and image of every
// Markdown file of the repository (README.md, docs/*.md, the runbooks, …):
// the file or folder must exist and a #fragment must name a heading of the
// page it points into, as GitHub renders it.
func TestRepositoryLinks(t *testing.T) {
	repo := os.DirFS("..")
	files, err := markdownFiles(repo)
	if err != nil {
		t.Fatalf("listing the Markdown files: %v", err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d Markdown files (%v): the test must run from docs/ in the repository", len(files), files)
	}
	problems, err := checkLinks(repo, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestReadmeIsShort keeps README.md what a newcomer reads to the end
// (issue 21): what this is, the two commands, the report, the targets, the
// parts, the server in two minutes, and links. Details go to docs/.
func TestReadmeIsShort(t *testing.T) {
	const maxLines = 199
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("reading README.md: %v", err)
	}
	if n := strings.Count(string(b), "\n"); n > maxLines {
		t.Errorf("README.md has %d lines, more than %d: move the details to the page of docs/ they belong to and link it", n, maxLines)
	}
}

func TestCheckLinks(t *testing.T) {
	repo := fstest.MapFS{
		"README.md": {Data: []byte("# hal9-lab\n\n![report](docs/report.png) [server](docs/server.md#flags-and-environment-variables)\n" +
			"[lab](docs/lab.md#where-the-code-is) [up](#hal9-lab) [web](https://example.com/x.md) [dir](alerts/)\n" +
			"`[not a link](nowhere.md)`\n\n```sh\n[not a link either](nowhere.md)\n# not a heading\n```\n")},
		"docs/report.png": {Data: []byte("png")},
		"docs/server.md": {Data: []byte("# The server\n\n## Flags and environment variables\n\n## Metrics\n\n## Metrics\n\n" +
			"<a id=\"custom-anchor\"></a>\n[back](../README.md#hal9-lab) [second](#metrics-1) [custom](#custom-anchor)\n")},
		"docs/lab.md":        {Data: []byte("# Lab\n\n## Where the code is\n\n[gone](numbers.md) [bad](server.md#metrics-2)\n[wrapped\ntext](../README.md#not-a-heading) [out](../../x.md)\n")},
		"alerts/HAL9Down.md": {Data: []byte("# HAL9Down\n")},
	}
	files, err := markdownFiles(repo)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"README.md", "alerts/HAL9Down.md", "docs/lab.md", "docs/server.md"}; fmt.Sprint(files) != fmt.Sprint(want) {
		t.Fatalf("files = %v, want %v", files, want)
	}
	problems, err := checkLinks(repo, files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`docs/lab.md:5: link "numbers.md": docs/numbers.md does not exist`,
		`docs/lab.md:5: link "server.md#metrics-2": docs/server.md has no heading or anchor "metrics-2" (it has: custom-anchor, flags-and-environment-variables, metrics, metrics-1, the-server)`,
		`docs/lab.md:6: link "../README.md#not-a-heading": README.md has no heading or anchor "not-a-heading" (it has: hal9-lab)`,
		`docs/lab.md:7: link "../../x.md": points outside the repository`,
	}
	if strings.Join(problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Replicas behind HAProxy (`--replicas`)", "replicas-behind-haproxy---replicas"},
		{"Measured (shared machine: noisy)", "measured-shared-machine-noisy"},
		{"The history: `hal9-lab history`", "the-history-hal9-lab-history"},
		{"`make gate`: the regression gate", "make-gate-the-regression-gate"},
		{"Reports (`reports/runs/<UTC time>/`)", "reports-reportsrunsutc-time"},
		{"HAL9 lab · smoke: PASS", "hal9-lab--smoke-pass"},
		{"The value to set: `--capacity-rps`", "the-value-to-set---capacity-rps"},
		{"What [the lab](lab.md) prints", "what-the-lab-prints"},
		{"snake_case and **bold**", "snake_case-and-bold"},
	} {
		if got := slug(tc.heading); got != tc.want {
			t.Errorf("slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

// markdownFiles lists the repository's Markdown files, sorted, leaving out
// what git ignores and generates (bin/, data/, reports/runs/).
func markdownFiles(repo fs.FS) ([]string, error) {
	var files []string
	err := fs.WalkDir(repo, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch p {
			case ".git", "bin", "data", "reports/runs":
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walking the repository: %w", err)
	}
	sort.Strings(files)
	return files, nil
}

var (
	fence      = regexp.MustCompile("^\\s{0,3}(```|~~~)")
	headingRe  = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	anchorRe   = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refLink    = regexp.MustCompile(`(?m)^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s+"[^"]*")?\s*$`)
	linkText   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// page is what the links of a Markdown file see of it: its anchors, and
// its text outside code blocks with the line each byte came from.
type page struct {
	anchors map[string]bool
	text    string
	lineOf  []int // line number (1-based) of each byte of text
}

func readPage(repo fs.FS, name string) (*page, error) {
	b, err := fs.ReadFile(repo, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	p := &page{anchors: map[string]bool{}}
	seen := map[string]int{}
	var text strings.Builder
	inCode := false
	for i, line := range strings.Split(string(b), "\n") {
		if fence.MatchString(line) {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		if m := headingRe.FindStringSubmatch(line); m != nil {
			s := slug(m[1])
			if n := seen[s]; n > 0 {
				p.anchors[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				p.anchors[s] = true
			}
			seen[s]++
		}
		for _, m := range anchorRe.FindAllStringSubmatch(line, -1) {
			p.anchors[m[1]] = true
		}
		line = codeSpan.ReplaceAllStringFunc(line, func(s string) string { return strings.Repeat(" ", len(s)) })
		text.WriteString(line)
		text.WriteByte('\n')
		for range len(line) + 1 {
			p.lineOf = append(p.lineOf, i+1)
		}
	}
	p.text = text.String()
	return p, nil
}

// slug is the anchor GitHub gives a heading: its text as rendered (code
// and links reduced to their text), in lower case, with everything but
// letters, digits, '_', '-' and spaces dropped and spaces made '-'.
func slug(heading string) string {
	heading = linkText.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-', r == '_', unicode.IsLetter(r), unicode.IsDigit(r), unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkLinks returns one line per broken relative link of files.
func checkLinks(repo fs.FS, files []string) ([]string, error) {
	pages := map[string]*page{}
	get := func(name string) (*page, error) {
		if p, ok := pages[name]; ok {
			return p, nil
		}
		p, err := readPage(repo, name)
		if err != nil {
			return nil, err
		}
		pages[name] = p
		return p, nil
	}
	var problems []string
	for _, name := range files {
		p, err := get(name)
		if err != nil {
			return nil, err
		}
		type link struct {
			target string
			line   int
		}
		var links []link
		for _, re := range []*regexp.Regexp{inlineLink, refLink} {
			for _, m := range re.FindAllStringSubmatchIndex(p.text, -1) {
				links = append(links, link{p.text[m[2]:m[3]], p.lineOf[m[0]]})
			}
		}
		sort.SliceStable(links, func(i, j int) bool { return links[i].line < links[j].line })
		for _, l := range links {
			if problem := checkLink(repo, name, l.target, get); problem != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s", name, l.line, l.target, problem))
			}
		}
	}
	return problems, nil
}

func checkLink(repo fs.FS, from, target string, get func(string) (*page, error)) string {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Sprintf("not a URL: %v", err)
	}
	if u.Scheme != "" || u.Host != "" {
		return "" // http(s), mailto: not checked here
	}
	dest := from
	if u.Path != "" {
		if strings.HasPrefix(u.Path, "/") {
			return "absolute path: write it relative to " + path.Dir(from)
		}
		dest = path.Join(path.Dir(from), u.Path)
		if dest == ".." || strings.HasPrefix(dest, "../") {
			return "points outside the repository"
		}
		if _, err := fs.Stat(repo, dest); err != nil {
			return dest + " does not exist"
		}
	}
	if u.Fragment == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	p, err := get(dest)
	if err != nil {
		return err.Error()
	}
	if !p.anchors[u.Fragment] {
		have := make([]string, 0, len(p.anchors))
		for a := range p.anchors {
			have = append(have, a)
		}
		sort.Strings(have)
		if len(have) > 12 {
			have = append(have[:12], "…")
		}
		return fmt.Sprintf("%s has no heading or anchor %q (it has: %s)", dest, u.Fragment, strings.Join(have, ", "))
	}
	return ""
}
