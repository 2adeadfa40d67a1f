package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"meridian/replica"
)

// metrics are the node's Prometheus series, served at /metrics.
type metrics struct {
	reg         *prometheus.Registry
	peers       prometheus.Gauge
	msgsIn      *prometheus.CounterVec
	msgsOut     *prometheus.CounterVec
	bytesIn     *prometheus.CounterVec
	bytesOut    *prometheus.CounterVec
	editsIn     prometheus.Counter
	syncRounds  prometheus.Counter
	lag         *prometheus.HistogramVec
	events      *prometheus.CounterVec
	changes     prometheus.Counter
	waiting     prometheus.Gauge
	storeBytes  prometheus.Gauge
	badMessages prometheus.Counter
	inboxDrops  prometheus.Counter
	sendDrops   prometheus.Counter

	bridgeWritten  prometheus.Counter
	bridgeCaptured prometheus.Counter
	bridgeLag      prometheus.GaugeFunc
	divergent      *prometheus.GaugeVec
}

func newMetrics(n *Node) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.peers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_peers", Help: "Connected peers."})
	m.msgsIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_messages_in_total", Help: "Replication messages received, by type."}, []string{"type"})
	m.msgsOut = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_messages_out_total", Help: "Replication messages sent, by type."}, []string{"type"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_bytes_in_total", Help: "Bytes of replication messages received, by type."}, []string{"type"})
	m.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_bytes_out_total", Help: "Bytes of replication messages sent, by type."}, []string{"type"})
	m.editsIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_deltas_in_total", Help: "Batches of edits received (pushed or served)."})
	m.syncRounds = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_anti_entropy_rounds_total", Help: "Anti-entropy exchanges started (sync messages sent)."})
	m.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meridian_propagation_lag_seconds",
		Help: "Time from an edit's timestamp at its origin to its arrival here (pushed batches), by origin.",
		Buckets: []float64{.0005, .001, .0015, .002, .003, .004, .005, .0065, .008, .01, .0125, .015, .0175, .02, .025, .03, .04,
			.05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"origin"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_replication_events_total", Help: "Rejections, clock-skew holds, buffering, divergences, collections."}, []string{"kind"})
	m.changes = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_document_changes_total", Help: "Converged document changes."})
	m.waiting = prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_waiting_batches", Help: "Batches waiting for dependencies or for the clock."})
	m.storeBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "meridian_store_bytes", Help: "Bytes of the Badger store on disk."})
	m.badMessages = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_bad_messages_total", Help: "Undecodable messages (the sender is disconnected)."})
	m.inboxDrops = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_inbox_drops_total", Help: "Messages dropped because the loop was behind."})
	m.sendDrops = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_send_drops_total", Help: "Messages not sent: peer gone or its queue full."})
	m.bridgeWritten = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_bridge_documents_written_total", Help: "Documents the bridge wrote into (or deleted from) the site's database."})
	m.bridgeCaptured = prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_bridge_documents_captured_total", Help: "Local changes in the site's database turned into edits."})
	m.divergent = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meridian_verify_divergent_documents", Help: "Documents the latest verify found held differently by a peer that delivered the same writes, by doctype."}, []string{"doctype"})
	m.bridgeLag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_bridge_lag_seconds", Help: "How long the oldest change not yet in the site's database has waited."},
		func() float64 {
			b := n.br()
			if b == nil {
				return 0
			}
			return b.lag().Seconds()
		})
	for _, c := range []prometheus.Collector{m.peers, m.msgsIn, m.msgsOut, m.bytesIn, m.bytesOut, m.editsIn, m.syncRounds, m.lag,
		m.events, m.changes, m.waiting, m.storeBytes, m.badMessages, m.inboxDrops, m.sendDrops, m.bridgeWritten, m.bridgeCaptured, m.bridgeLag, m.divergent,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

func (m *metrics) countIn(msg *replica.Message, size int) {
	t := msg.Type.String()
	m.msgsIn.WithLabelValues(t).Inc()
	m.bytesIn.WithLabelValues(t).Add(float64(size))
	m.editsIn.Add(float64(len(msg.Batches)))
}

func (m *metrics) countOut(msg *replica.Message, size int) {
	t := msg.Type.String()
	m.msgsOut.WithLabelValues(t).Inc()
	m.bytesOut.WithLabelValues(t).Add(float64(size))
	if msg.Type == replica.MsgSync {
		m.syncRounds.Inc()
	}
}
