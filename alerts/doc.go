// Package alerts holds HAL9's Prometheus recording and alerting rules
// (hal9.rules.yml), their promtool unit tests (tests/*.yml) and one runbook
// per alert (runbooks/<AlertName>.md). The Go code here is only the test that
// keeps the three consistent; the files are the product.
package alerts
