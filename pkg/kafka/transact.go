package kafka

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// ClientOpts returns the connection options of every Sluice client
// (brokers, client id, SASL, TLS), for clients this package does not build.
func (c Config) ClientOpts() ([]kgo.Opt, error) { return c.clientOpts() }

// NewTransactSession builds an exactly-once consume-transform-produce
// session (franz-go GroupTransactSession): a group consumer of gc.Topics
// that reads committed records only and commits its offsets inside each
// transaction, and a transactional producer with id txnID. A rebalance
// during a transaction aborts it (the session's choice, see
// kgo.NewGroupTransactSession); the caller re-polls from the committed
// offsets. extra options are appended last.
func NewTransactSession(cfg Config, gc GroupConfig, txnID string, txnTimeout time.Duration, log *zap.Logger, extra ...kgo.Opt) (*kgo.GroupTransactSession, error) {
	opts, err := cfg.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(gc.Group),
		kgo.ConsumeTopics(gc.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(txnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger),
		cfg.producerCompression(),
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProducerBatchMaxBytes(cfg.MaxMessageBytes),
		kgo.WithLogger(kzap.New(log.Named("kgo"), kzap.Level(kgo.LogLevelWarn))),
	)
	opts = append(opts, extra...)
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka transact session: %w", err)
	}
	return s, nil
}
