/**
 * Latency histogram in microseconds: log-linear buckets in one preallocated Float64Array, so recording
 * a sample is an index computation and an add (no allocation on the hot path), and histograms from
 * several load-generator processes merge by adding counts.
 *
 * Values under 128 µs get exact 1 µs buckets; above, each power of two is split into 128 buckets, so a
 * reported percentile is within 1/128 (< 0.8 %) of the true sample. Values past MAX_US clamp to the top.
 */
const SUB = 128;
const SUB_BITS = 7;
const MAX_EXP = 24; // 128 µs * 2^24 ≈ 36 min: far past any bound a run sets
const BUCKETS = SUB + MAX_EXP * SUB;
const MAX_US = SUB * 2 ** MAX_EXP - 1;

export interface HistogramJson {
  /** Sparse [bucket, count] pairs: most buckets are empty, and this crosses process boundaries as JSON. */
  counts: Array<[number, number]>;
  total: number;
  minUs: number;
  maxUs: number;
  sumUs: number;
}

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

function bucketOf(us: number): number {
  if (us < SUB) return us < 0 ? 0 : Math.floor(us);
  const v = us > MAX_US ? MAX_US : Math.floor(us);
  const exp = 31 - Math.clz32(v) - SUB_BITS; // ≥ 0 since v ≥ 128
  return SUB + (exp << SUB_BITS) + ((v >>> exp) - SUB);
}

/** The middle of a bucket, in µs: the value a percentile landing in it reports. */
function valueOf(bucket: number): number {
  if (bucket < SUB) return bucket + 0.5;
  const exp = (bucket - SUB) >>> SUB_BITS;
  const mantissa = ((bucket - SUB) & (SUB - 1)) + SUB;
  return (mantissa + 0.5) * 2 ** exp;
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  total = 0;
  minUs = Infinity;
  maxUs = 0;
  sumUs = 0;

  static from(json: HistogramJson): Histogram {
    const histogram = new Histogram();
    histogram.merge(json);
    return histogram;
  }

  record(us: number): void {
    this.counts[bucketOf(us)]++;
    this.total++;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.minUs = Infinity;
    this.maxUs = 0;
    this.sumUs = 0;
  }

  merge(other: HistogramJson): void {
    for (const [bucket, count] of other.counts) this.counts[bucket] += count;
    this.total += other.total;
    this.sumUs += other.sumUs;
    if (other.minUs < this.minUs) this.minUs = other.minUs;
    if (other.maxUs > this.maxUs) this.maxUs = other.maxUs;
  }

  /** The value at quantile q (0..1), in µs. */
  quantileUs(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs);
    }
    return this.maxUs;
  }

  /** p50/p99/p999/max/mean in milliseconds. */
  percentilesMs(): Percentiles {
    return {
      p50: this.quantileUs(0.5) / 1000,
      p99: this.quantileUs(0.99) / 1000,
      p999: this.quantileUs(0.999) / 1000,
      max: this.total === 0 ? NaN : this.maxUs / 1000,
      mean: this.total === 0 ? NaN : this.sumUs / this.total / 1000,
    };
  }

  toJSON(): HistogramJson {
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] !== 0) counts.push([i, this.counts[i]]);
    return { counts, total: this.total, minUs: this.minUs, maxUs: this.maxUs, sumUs: this.sumUs };
  }
}
