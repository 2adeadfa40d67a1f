package simulate

import "fmt"

// scenarioEvent carries out a scheduled fault or repair.
func (s *Sim) scenarioEvent(e *event) error {
	ev := e.sev
	if s.healed || (s.now >= s.workloadEnd && !e.undo) {
		return nil // the liveness phase runs on a healed network
	}
	if ev.Every > 0 && !e.undo && s.now+ms(ev.Every) <= ms(ev.Until) {
		s.schedule(&event{at: s.now + ms(ev.Every), kind: evScenario, sev: ev})
	}
	switch ev.Kind {
	case "partition", "flap":
		if e.undo {
			s.setPartition(partition{})
			if ev.Kind == "flap" && s.now+ms(ev.Period) < ms(ev.At)+ms(ev.For) {
				s.schedule(&event{at: s.now + ms(ev.Period), kind: evScenario, sev: ev})
			}
			return nil
		}
		s.setPartition(s.buildPartition(ev))
		switch {
		case ev.Kind == "flap":
			s.schedule(&event{at: s.now + ms(ev.Period), kind: evScenario, sev: ev, undo: true})
		case ev.For > 0:
			s.schedule(&event{at: s.now + ms(ev.For), kind: evScenario, sev: ev, undo: true})
		}
	case "heal":
		s.setPartition(partition{})
	case "grant", "deprecate":
		return s.authorityEvent(ev)
	case "crash":
		for _, i := range s.pickSites(ev, true) {
			s.crash(s.sites[i])
			if ev.For > 0 {
				s.schedule(&event{at: s.now + ms(ev.For), kind: evScenario, sev: &Event{Kind: "restart", Sites: []int{i}}})
			}
		}
	case "restart":
		sites := ev.Sites
		if len(sites) == 0 {
			for i, st := range s.sites {
				if !st.up {
					sites = append(sites, i)
				}
			}
		}
		for _, i := range sites {
			if err := s.restart(s.sites[i]); err != nil {
				return err
			}
		}
	case "clog":
		until := s.now + max(ms(ev.For), 1_000_000)
		for _, i := range s.pickSites(ev, false) {
			s.net.clogged[i] = until
		}
	case "unclog":
		for i := range s.net.clogged {
			s.net.clogged[i] = 0
		}
	case "skew":
		for _, i := range s.pickSites(ev, false) {
			s.sites[i].skew = ms(ev.Skew)
		}
	default:
		return fmt.Errorf("simulate: unknown event kind %q", ev.Kind)
	}
	return nil
}

// pickSites returns the event's sites, or Count (default 1) drawn at
// random (among the running ones when upOnly).
func (s *Sim) pickSites(ev *Event, upOnly bool) []int {
	if len(ev.Sites) > 0 {
		return ev.Sites
	}
	var pool []int
	for i, st := range s.sites {
		if !upOnly || st.up {
			pool = append(pool, i)
		}
	}
	n := max(ev.Count, 1)
	s.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	if n > len(pool) {
		n = len(pool)
	}
	return pool[:n]
}

func (s *Sim) buildPartition(ev *Event) partition {
	n := len(s.sites)
	p := partition{mode: "groups", group: make([]int, n), oneWay: ev.Asymmetric}
	switch ev.Mode {
	case "ring":
		return partition{mode: "ring"}
	case "halves":
		perm := s.rng.Perm(n)
		for k, i := range perm {
			if k < n/2 {
				p.group[i] = 0
			} else {
				p.group[i] = 1
			}
		}
	case "isolate":
		for i := range p.group {
			p.group[i] = 1
		}
		for _, i := range s.pickSites(ev, false) {
			p.group[i] = 0
		}
	case "random-groups":
		k := max(ev.NGroups, 2)
		for i := range p.group {
			p.group[i] = s.rng.IntN(k)
		}
	case "groups":
		for i := range p.group {
			p.group[i] = len(ev.Groups)
		}
		for g, members := range ev.Groups {
			for _, i := range members {
				p.group[i] = g
			}
		}
	}
	return p
}

// setPartition installs a partition and tells the replicas which
// connections broke or came back, as the transport would.
func (s *Sim) setPartition(p partition) {
	var was []bool
	for a, nbrs := range s.adj {
		for _, b := range nbrs {
			was = append(was, s.net.connected(a, b))
		}
	}
	s.net.setPartition(p)
	k := 0
	for a, nbrs := range s.adj {
		sa := s.sites[a]
		for _, b := range nbrs {
			before := was[k]
			k++
			now := s.net.connected(a, b)
			if before == now || !sa.up || !s.sites[b].up {
				continue
			}
			if now {
				sa.r.AddPeer(s.sites[b].id)
			} else {
				sa.r.RemovePeer(s.sites[b].id)
			}
		}
		s.needReady(sa)
	}
	s.rep.Totals.Partitions++
}
