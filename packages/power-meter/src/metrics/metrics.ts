import type { MeterState } from '@power-meter/meter-files';
import type { OutboxStats } from '@power-meter/w3bstream';

/**
 * The Prometheus metrics, pure: names, help, types and their values from the meter's state.
 * Names follow Prometheus conventions: base units (joules, watts, seconds, bytes, ratios),
 * counters end in `_total`. Counters "since install" come from the outbox database, so they
 * survive restarts; "since start" counters (faults) restart at 0 like any process counter.
 */
export interface MetricsSnapshot {
  state: MeterState;
  outbox: OutboxStats;
  /** outbox.sqlite + its WAL, bytes. */
  outboxBytes: number;
  /** Sensor faults seen since this process started (transitions to `fault`). */
  sensorFaults: number;
  /** Windows with missing readings since this process started. */
  incompleteWindows: number;
  version: string;
}

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface MetricDef {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labelNames: string[];
  samples: (s: MetricsSnapshot) => Sample[];
}

/**
 * One sample, or none while the value is unknown (no reading yet, no delivery yet, a sensor
 * fault, a balance never read): the series is then absent, never NaN. A NaN poisons every
 * expression it enters (sum, rate, comparisons) and reads as a value; `absent()` is the
 * Prometheus way to alert on a missing one.
 */
const one = (value: number | null | undefined): Sample[] =>
  value === null || value === undefined || !Number.isFinite(value) ? [] : [{ labels: {}, value }];
const seconds = (ms: number | null | undefined): number | null => (ms === null || ms === undefined ? null : ms / 1000);
const PUBLISH_STATES = ['disabled', 'ok', 'retrying', 'failing'] as const;

export const METRICS: readonly MetricDef[] = [
  {
    name: 'power_meter_info',
    help: 'Constant 1, labelled with the device address and the program version',
    type: 'gauge',
    labelNames: ['device_id', 'version'],
    samples: (s) => [{ labels: { device_id: s.state.deviceId, version: s.version }, value: 1 }],
  },
  {
    name: 'power_meter_sensor_info',
    help: 'Constant 1, labelled with the chip that measures (INA219, INA226, INA260, INA228), whether it is simulated, and the calibration applied ("none" when uncalibrated)',
    type: 'gauge',
    labelNames: ['chip', 'simulated', 'calibration_id'],
    samples: (s) => [
      {
        labels: {
          chip: s.state.sensor.chip ?? 'INA219',
          simulated: String(s.state.sensor.simulated ?? false),
          calibration_id: s.state.sensor.calibrationId ?? 'none',
        },
        value: 1,
      },
    ],
  },
  {
    name: 'power_meter_energy_joules_total',
    help: 'Energy measured since the meter was installed (never decreases); divide by 3.6e6 for kWh',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.state.energyTotalWh * 3600),
  },
  {
    name: 'power_meter_power_watts',
    help: 'Latest instantaneous power (absent while the sensor is faulty)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.powerW),
  },
  {
    name: 'power_meter_window_average_power_watts',
    help: 'Mean power of the last window (one signed reading)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.lastWindow?.avgPowerW),
  },
  {
    name: 'power_meter_window_observed_ratio',
    help: 'Fraction of the last window covered by ADC conversions (0-1)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.lastWindow?.observedFraction),
  },
  {
    name: 'power_meter_window_end_timestamp_seconds',
    help: 'Unix time of the end of the last window',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(seconds(s.state.lastWindow?.endMs)),
  },
  {
    name: 'power_meter_readings_signed_total',
    help: 'Readings measured, signed and stored in the outbox since it was created (signatures made, not sequence numbers)',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.outbox.appended),
  },
  {
    name: 'power_meter_sequence_skipped_total',
    help: 'Sequence numbers (eventIDs) skipped since the outbox was created: readings lost in a power cut or with a lost or older outbox, and the unused rest of the reserved block',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.outbox.skipped),
  },
  {
    name: 'power_meter_readings_delivered_total',
    help: 'Readings the W3bstream node accepted since install',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.outbox.delivered),
  },
  {
    name: 'power_meter_readings_refused_total',
    help: 'Readings the applet refused (delivered, not retried) since install',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.outbox.rejected),
  },
  {
    name: 'power_meter_readings_dropped_total',
    help: 'Undelivered readings dropped (outbox full or too old, or held across a reboot) since install',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.state.publishing.dropped),
  },
  {
    name: 'power_meter_readings_waiting',
    help: 'Readings stored and not yet delivered',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.publishing.waiting),
  },
  {
    name: 'power_meter_readings_held',
    help: 'Readings held until the system clock is synchronised',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.publishing.held),
  },
  {
    name: 'power_meter_publish_state',
    help: 'Publishing state: 1 for the current one of disabled, ok, retrying, failing',
    type: 'gauge',
    labelNames: ['state'],
    samples: (s) => PUBLISH_STATES.map((st) => ({ labels: { state: st }, value: s.state.publishing.state === st ? 1 : 0 })),
  },
  {
    name: 'power_meter_publish_last_success_timestamp_seconds',
    help: 'Unix time of the last successful delivery (absent before the first)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(seconds(s.state.publishing.lastSuccessMs)),
  },
  {
    name: 'power_meter_sensor_up',
    help: '1 while the sensor answers, 0 during a fault',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.sensor.state === 'ok' ? 1 : 0),
  },
  {
    name: 'power_meter_sensor_faults_total',
    help: 'Sensor faults since the program started',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.sensorFaults),
  },
  {
    name: 'power_meter_windows_incomplete_total',
    help: 'Windows with missing readings since the program started',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.incompleteWindows),
  },
  {
    name: 'power_meter_outbox_size_bytes',
    help: 'Size of the outbox database with its write-ahead log',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.outboxBytes),
  },
  {
    name: 'power_meter_reward_rate_tokens_per_hour',
    help: 'Reward rate for the last window from the tier table',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.rewards.tokensPerH),
  },
  {
    name: 'power_meter_rewards_tokens_total',
    help: 'Rewards accrued since install (never decreases)',
    type: 'counter',
    labelNames: [],
    samples: (s) => one(s.state.rewards.total),
  },
  {
    name: 'power_meter_bus_volts',
    help: 'Latest bus voltage on the load side (absent while the sensor is faulty)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.sensor.state === 'ok' ? s.state.sensor.busV : null),
  },
  {
    name: 'power_meter_current_amperes',
    help: 'Latest current through the shunt (absent while the sensor is faulty)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.sensor.state === 'ok' ? s.state.sensor.currentA : null),
  },
  {
    name: 'power_meter_reward_balance_tokens',
    help: "The owner's reward-token balance read from the chain (with --rpc-url; absent before the first read)",
    type: 'gauge',
    labelNames: ['token', 'owner'],
    samples: (s) => {
      const b = s.state.rewardBalance;
      const tokens = b?.tokens === null || b?.tokens === undefined ? null : Number(b.tokens);
      return b === undefined || tokens === null || !Number.isFinite(tokens)
        ? []
        : [{ labels: { token: b.token, owner: b.owner }, value: tokens }];
    },
  },
  {
    name: 'power_meter_reward_balance_read_timestamp_seconds',
    help: 'Unix time the reward balance was last read (a stale value means the RPC fails; absent before the first read)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(seconds(s.state.rewardBalance?.readAtMs)),
  },
  {
    name: 'power_meter_state_updated_timestamp_seconds',
    help: 'Unix time of the last state update (a stale value means the meter is stuck)',
    type: 'gauge',
    labelNames: [],
    samples: (s) => one(s.state.updatedAtMs / 1000),
  },
];

/** Counts sensor faults and incomplete windows from successive states, pure. */
export class FaultCounter {
  sensorFaults = 0;
  incompleteWindows = 0;
  private lastSensor: string | null = null;
  private lastWindowEndMs: number | null = null;

  update(s: MeterState): void {
    if (s.sensor.state === 'fault' && this.lastSensor !== 'fault') this.sensorFaults++;
    this.lastSensor = s.sensor.state;
    const w = s.lastWindow;
    if (w && w.endMs !== this.lastWindowEndMs) {
      if (!w.complete) this.incompleteWindows++;
      this.lastWindowEndMs = w.endMs;
    }
  }
}
