/**
 * Types for parse-prometheus-text-format 1.1 (it ships none): the shape of its output as its
 * README documents it, which follows prom2json. A counter, gauge or untyped sample has `value`;
 * a histogram's has `buckets`, `count` and `sum`; a summary's `quantiles`, `count` and `sum`.
 * Every number stays the text it was written as ("3851.0", "+Inf").
 */
declare module 'parse-prometheus-text-format' {
  export interface PrometheusSample {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  export interface PrometheusFamily {
    name: string;
    help: string;
    /** Upper case: COUNTER, GAUGE, HISTOGRAM, SUMMARY or UNTYPED. */
    type: string;
    metrics: PrometheusSample[];
  }
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
