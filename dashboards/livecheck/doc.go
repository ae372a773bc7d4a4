// Package livecheck holds the test that starts the real hal9 server, sends
// it a little traffic, scrapes its admin /metrics, and checks that every
// metric name used by a dashboard panel or an alert/recording rule exists.
// The original HAL9's dashboards queried metrics its server never exported;
// this test is why ours cannot.
package livecheck
