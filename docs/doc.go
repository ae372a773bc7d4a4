// Package docs holds the project's documentation (README.md's details,
// one page per part). The Go code here is only the test that keeps every
// relative link of README.md and of the repository's other Markdown files
// pointing at a file that exists and, for a #fragment, at a heading (or an
// <a id>) that the page has; the pages are the product.
package docs
