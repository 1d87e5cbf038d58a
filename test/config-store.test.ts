/** The store settings of configFromEnv: LevelDB by default, JetStream only with a NATS URL. */
import os from 'node:os';
import t from 'tap';
import { configFromEnv } from '../src/config.js';

t.test('LevelDB by default', async (t) => {
  const config = configFromEnv({});
  t.equal(config.store, 'level');
  t.same(config.natsUrls, []);
  t.equal(config.nodeId, `${os.hostname()}:8080`, 'node id: <hostname>:<port>');
  t.equal(configFromEnv({ VMSTREAM_PORT: '9001' }).nodeId, `${os.hostname()}:9001`, 'with the configured port');
});

t.test('VMSTREAM_STORE=jetstream with its settings', async (t) => {
  const config = configFromEnv({
    VMSTREAM_STORE: 'jetstream',
    VMSTREAM_NATS_URL: 'nats://a:4222, nats://b:4222,',
    VMSTREAM_JS_PREFIX: 'prod-1',
    VMSTREAM_JS_REPLICAS: '3',
    VMSTREAM_NODE_ID: 'node-a',
  });
  t.equal(config.store, 'jetstream');
  t.same(config.natsUrls, ['nats://a:4222', 'nats://b:4222'], 'comma-separated, trimmed');
  t.equal(config.jetstreamPrefix, 'prod-1');
  t.equal(config.jetstreamReplicas, 3);
  t.equal(config.nodeId, 'node-a');
});

t.test('cluster settings: lease, heartbeat, forward timeout (2 × lease + 5 s unless set)', async (t) => {
  const defaults = configFromEnv({});
  t.equal(defaults.nodeLeaseMs, 5000);
  t.equal(defaults.nodeHeartbeatMs, 1000);
  t.equal(defaults.forwardTimeoutMs, 15_000);
  const set = configFromEnv({ VMSTREAM_NODE_LEASE_MS: '2000', VMSTREAM_NODE_HEARTBEAT_MS: '250' });
  t.equal(set.forwardTimeoutMs, 9000, 'follows the lease');
  t.equal(configFromEnv({ VMSTREAM_FORWARD_TIMEOUT_MS: '700' }).forwardTimeoutMs, 700, 'or as given');
  t.throws(() => configFromEnv({ VMSTREAM_NODE_LEASE_MS: '1000', VMSTREAM_NODE_HEARTBEAT_MS: '1000' }), { name: 'ConfigError', message: /VMSTREAM_NODE_HEARTBEAT_MS \(1000\) must be shorter than VMSTREAM_NODE_LEASE_MS/ });
});

t.test('bad store settings stop the server with the variable named', async (t) => {
  t.throws(() => configFromEnv({ VMSTREAM_STORE: 'redis' }), { name: 'ConfigError', message: /VMSTREAM_STORE must be level or jetstream/ });
  t.throws(() => configFromEnv({ VMSTREAM_STORE: 'jetstream' }), { name: 'ConfigError', message: /needs VMSTREAM_NATS_URL/ });
  t.throws(() => configFromEnv({ VMSTREAM_JS_PREFIX: 'a.b' }), { name: 'ConfigError', message: /VMSTREAM_JS_PREFIX takes only/ });
  t.throws(() => configFromEnv({ VMSTREAM_JS_REPLICAS: '0' }), { name: 'ConfigError', message: /VMSTREAM_JS_REPLICAS must be an integer >= 1/ });
});
