package server

import "net/netip"

// NetworkPrefixV6 is the IPv6 prefix the credential routes' ceiling counts
// as one network. A client holds a whole /64 (SLAAC hands every host and
// LAN one, and rotating addresses inside it is free), so a /64 is one
// client. One subscriber gets up to a /48 (RIPE-690 recommends /48 for
// businesses, /56 for homes), so rotating through its /64s is free too: a
// /56 holds 256 of them, a /48 65,536. The ceiling over a /48 bounds what
// one subscriber can put into the bcrypt pool however it rotates, while a
// /48 that an ISP splits among many homes still gets NetworkShare clients'
// worth before its neighbours feel it.
const NetworkPrefixV6 = 48

// NetworkShare is how many clients' worth of the credential routes' rate
// one IPv6 /48 gets.
const NetworkShare = 16

// clientKeys is the one place that decides what a client address counts
// as, for every per-address limit (the general rate limit, the failed
// authentication bucket, the credential routes and the failed logins of a
// username): client is an IPv4 address (a v4-mapped IPv6 address is its
// IPv4), or the /64 of an IPv6 address; network is the /48 of an IPv6
// address, and "" for IPv4, which has no wider ceiling (an IPv4 address is
// scarce, and a /24 is often shared by unrelated customers behind one
// ISP's NAT pool, so a ceiling there would punish neighbours, not one
// attacker). An unparsable address is its own client.
func clientKeys(ip string) (client, network string) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "addr:" + clip(ip, 64), ""
	}
	a = a.Unmap().WithZone("")
	if !a.Is6() {
		return "addr:" + a.String(), ""
	}
	c, _ := a.Prefix(64)
	n, _ := a.Prefix(NetworkPrefixV6)
	return "addr:" + c.String(), "net:" + n.String()
}

// clientOf is clientKeys' client.
func clientOf(ip string) string {
	c, _ := clientKeys(ip)
	return c
}
