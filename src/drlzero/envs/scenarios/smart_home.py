"""``drlzero/SmartHome-v0``: one day of a room's climate and lights, comfort against energy.

A day runs from 00:00 to 24:00 in 15-minute steps (96 steps). Each episode draws a day: a
season (mean outside temperature from -2 to 28 C, daily swing 3 to 7 C, warmest at 15:00), a
sunlight profile (sunrise, sunset, cloudiness) and an occupant with a schedule (wake-up, leaving
for work and coming back, or a day at home, bedtime) and a preferred temperature (20 to 23 C
awake, 2 C less asleep). The room warms or cools towards the outside temperature (time constant
8 h), gains heat from sunlight through open curtains, and has a thermostat (off, heat, cool)
and a lamp. Electricity costs 0.15 EUR/kWh, 0.30 in the 17:00-21:00 peak.

Observation (Box float32 of 12), scaled to about [-1, 1]::

    [sin(2 pi h/24), cos(2 pi h/24), T_in/30, T_out/30, T_out in 3 h/30, sunlight (0..1),
     price/0.30, present, asleep, preferred T/30, hours to the next schedule change/24,
     hours to the next arrival home or wake-up/24]

(``drlzero/SmartHomeText-v0`` states the same in one sentence.)

Actions (Discrete 12): ``a = 4 * thermostat + 2 * curtains_open + light_on`` with thermostat
0 off, 1 heat (2 kW, +4 C/h), 2 cool (1.5 kW, -4 C/h); the lamp draws 0.1 kW.

Reward per step, in EUR (negative): ``-(energy cost + discomfort)``, where discomfort prices
1 EUR per degree-hour outside the preferred band (+-1 C) while the occupant is home, and
0.5 EUR per hour the occupant is home, awake and in the dark (light below 0.3 of full daylight).

Termination: the end of the day (step 96). The registered time limit is the same 96 steps.

Success: ``info["is_success"]`` on the final step is True when the occupant spent at most 1
degree-hour outside the comfort band all day.

House rules (the rule engine a learned policy is combined with): every ``reset``/``step`` info
holds ``info["action_mask"]`` (12 bools, True = allowed in the returned state) and
``info["rule_violations"]``, the steps of this episode whose action broke a rule. A step's rules
are judged on the state the action is taken in:

- *heat cut-off*: no heating while ``T_in >= preferred + 1 C`` (the awake comfort band's top:
  no schedule wants the room warmer);
- *cool cut-off*: no cooling while ``T_in <= preferred - 3 C`` (the night band's bottom);
- *privacy*: curtains closed while the occupant is home and there is no sunlight over the step
  (open curtains then neither light nor warm the room);
- *empty room*: the lamp off while nobody is home.

Off with the lamp off and the curtains closed (action 0) is always allowed. The rules never change
the dynamics: an agent that ignores the mask (``env.action_mask=none``) may break them, and the
count says how often; one that reads it (``env.action_mask=info``) never does.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drlzero.envs.scenarios import _draw
from drlzero.envs.scenarios._text import text_space

STEP_H = 0.25
STEPS_PER_DAY = 96
TAU_H = 8.0  # thermal time constant of the room, hours
SUN_GAIN = 3.0  # C/h at full sun with open curtains
SUN_GAIN_CLOSED = 0.5  # C/h through closed curtains
HVAC_RATE = {0: 0.0, 1: 4.0, 2: -4.0}  # C/h
HVAC_KW = {0: 0.0, 1: 2.0, 2: 1.5}
LAMP_KW = 0.1
PRICE = 0.15  # EUR/kWh
PEAK_PRICE = 0.30  # EUR/kWh, 17:00-21:00
COMFORT_BAND = 1.0  # C either side of the preferred temperature
COMFORT_EUR = 1.0  # EUR per degree-hour outside the band, while home
DARK_EUR = 0.5  # EUR per hour home, awake and in the dark
LIGHT_NEED = 0.3  # fraction of full daylight that counts as lit
SLEEP_SETBACK = 2.0  # C cooler preferred while asleep
SUCCESS_DEGREE_HOURS = 1.0
COOL_CUTOFF_BELOW = SLEEP_SETBACK + COMFORT_BAND  # C below the preferred temperature


def _mask_table() -> np.ndarray:
    """``table[heat_ok, cool_ok, curtains_ok, lamp_ok]``: the 12 actions' flags for each
    combination of the four rules' verdicts (a lookup, not array work, on every step)."""
    a = np.arange(12)
    thermostat, curtains, light = a // 4, (a // 2) % 2, a % 2
    table = np.zeros((2, 2, 2, 2, 12), dtype=bool)
    for heat, cool, open_ok, lamp_ok in np.ndindex(2, 2, 2, 2):
        table[heat, cool, open_ok, lamp_ok] = (
            ((thermostat != 1) | bool(heat))
            & ((thermostat != 2) | bool(cool))
            & ((curtains == 0) | bool(open_ok))
            & ((light == 0) | bool(lamp_ok))
        )
    return table


_MASKS = _mask_table()

OBS_DIM = 12


class SmartHomeEnv(gym.Env):
    """A day in a smart room (see the module doc).

    Args:
        obs_mode: ``vector`` (12 floats) or ``text`` (a sentence).
        render_mode: None or ``rgb_array``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, obs_mode: str = "vector", render_mode: str | None = None) -> None:
        if obs_mode not in ("vector", "text"):
            raise ValueError(f"obs_mode={obs_mode!r} must be vector or text")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: only rgb_array is supported")
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(12)
        if obs_mode == "vector":
            self.observation_space = spaces.Box(-2.0, 2.0, (OBS_DIM,), dtype=np.float32)
        else:
            self.observation_space = text_space(256)
        # The day: drawn at reset.
        self.t_mean = 15.0
        self.t_amp = 5.0
        self.sunrise = 6.5
        self.sunset = 19.0
        self.clouds = 0.0
        self.wake = 7.0
        self.leave = 8.5
        self.back = 17.5
        self.bedtime = 23.0
        self.preferred = 21.0
        # The state.
        self.step_idx = 0
        self.t_in = 20.0
        self.curtains_open = 1
        self.light_on = 0
        self.thermostat = 0
        self.discomfort_dh = 0.0  # degree-hours outside the band while home
        self.energy_kwh = 0.0
        self.cost_eur = 0.0
        self.rule_violations = 0

    # ------------------------------------------------------------------------------ schedule
    def hour(self) -> float:
        return self.step_idx * STEP_H

    def outside_temp(self, h: float) -> float:
        return self.t_mean + self.t_amp * math.cos(2.0 * math.pi * (h - 15.0) / 24.0)

    def sunlight(self, h: float) -> float:
        """Sunlight in [0, 1] of a clear noon."""
        if not self.sunrise < h < self.sunset:
            return 0.0
        clear = math.sin(math.pi * (h - self.sunrise) / (self.sunset - self.sunrise))
        return clear * (1.0 - self.clouds)

    def asleep(self, h: float) -> bool:
        return h < self.wake or h >= self.bedtime

    def present(self, h: float) -> bool:
        return not self.leave <= h < self.back

    def price(self, h: float) -> float:
        return PEAK_PRICE if 17.0 <= h < 21.0 else PRICE

    def _changes(self) -> list[float]:
        return sorted({self.wake, self.leave, self.back, self.bedtime, 24.0})

    def hours_to_change(self, h: float) -> float:
        return min(c for c in self._changes() if c > h) - h if h < 24.0 else 0.0

    def hours_to_need(self, h: float) -> float:
        """Hours until the occupant next comes home or wakes up (0 if home and awake)."""
        if self.present(h) and not self.asleep(h):
            return 0.0
        starts = [c for c in (self.wake, self.back) if c > h and self.present(c)]
        return (min(starts) - h) if starts else 24.0 - h

    # ------------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        self.t_mean = float(rng.uniform(-2.0, 28.0))
        self.t_amp = float(rng.uniform(3.0, 7.0))
        self.sunrise = float(rng.uniform(5.5, 7.5))
        self.sunset = float(rng.uniform(17.5, 20.5))
        self.clouds = float(rng.uniform(0.0, 0.8))
        self.wake = float(rng.integers(24, 33)) * STEP_H  # 06:00-08:00
        self.bedtime = float(rng.integers(88, 96)) * STEP_H  # 22:00-23:45
        if rng.random() < 0.3:  # a day at home
            self.leave = self.back = 24.0
        else:
            self.leave = self.wake + float(rng.integers(2, 7)) * STEP_H
            self.back = float(rng.integers(64, 77)) * STEP_H  # 16:00-19:00
        self.preferred = float(np.round(rng.uniform(20.0, 23.0), 1))
        self.step_idx = 0
        self.t_in = float(np.round(rng.uniform(16.0, 26.0), 2))
        self.curtains_open = 1
        self.light_on = 0
        self.thermostat = 0
        self.discomfort_dh = 0.0
        self.energy_kwh = 0.0
        self.cost_eur = 0.0
        self.rule_violations = 0
        return self._obs(), self._rules_info({})

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        a = int(action)
        self.rule_violations += int(not self.action_mask()[a])
        self.thermostat, self.curtains_open, self.light_on = a // 4, (a // 2) % 2, a % 2
        h = self.hour()
        sun = self.sunlight(h + STEP_H / 2)
        # Forward Euler of dT/dt = (T_out - T_in)/tau + sun gain + HVAC, in C/h.
        gain = SUN_GAIN if self.curtains_open else SUN_GAIN_CLOSED
        dtemp = (
            (self.outside_temp(h + STEP_H / 2) - self.t_in) / TAU_H
            + gain * sun
            + HVAC_RATE[self.thermostat]
        )
        self.t_in += dtemp * STEP_H
        kwh = (HVAC_KW[self.thermostat] + LAMP_KW * self.light_on) * STEP_H
        energy_eur = kwh * self.price(h)
        discomfort_eur, deviation = self.discomfort(h, self.t_in, sun)
        self.discomfort_dh += deviation * STEP_H
        self.energy_kwh += kwh
        self.cost_eur += energy_eur
        self.step_idx += 1
        terminated = self.step_idx >= STEPS_PER_DAY
        info: dict[str, Any] = {"energy_eur": energy_eur, "discomfort_eur": discomfort_eur}
        if terminated:
            info["is_success"] = self.discomfort_dh <= SUCCESS_DEGREE_HOURS
            info["energy_kwh"] = self.energy_kwh
            info["discomfort_degree_hours"] = self.discomfort_dh
        return (
            self._obs(),
            -(energy_eur + discomfort_eur),
            terminated,
            False,
            self._rules_info(info),
        )

    # ---------------------------------------------------------------------------- house rules
    def action_mask(self) -> np.ndarray:
        """The 12 actions' flags under the house rules in the current state (True = allowed)."""
        h = self.hour()
        present = self.present(h)
        heat_ok = self.t_in < self.preferred + COMFORT_BAND
        cool_ok = self.t_in > self.preferred - COOL_CUTOFF_BELOW
        open_ok = not present or self.sunlight(h + STEP_H / 2) > 0.0  # privacy
        return _MASKS[int(heat_ok), int(cool_ok), int(open_ok), int(present)]

    def _rules_info(self, info: dict[str, Any]) -> dict[str, Any]:
        info["action_mask"] = self.action_mask().copy()
        info["rule_violations"] = self.rule_violations
        return info

    def discomfort(self, h: float, t_in: float, sun: float) -> tuple[float, float]:
        """(EUR of discomfort over one step, degrees outside the band) at hour ``h``."""
        if not self.present(h):
            return 0.0, 0.0
        target = self.preferred - (SLEEP_SETBACK if self.asleep(h) else 0.0)
        deviation = max(abs(t_in - target) - COMFORT_BAND, 0.0)
        eur = COMFORT_EUR * deviation * STEP_H
        lit = sun * self.curtains_open + self.light_on
        if not self.asleep(h) and lit < LIGHT_NEED:
            eur += DARK_EUR * STEP_H
        return eur, deviation

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        h = min(self.hour(), 24.0 - 1e-6)
        sun = self.sunlight(h)
        sky = (int(30 + 200 * sun), int(30 + 200 * sun), int(80 + 170 * sun))
        frame = _draw.canvas(160, 240, sky)
        _draw.rect(frame, 40, 40, 150, 200, (245, 235, 215))  # the room
        if self.light_on:
            _draw.rect(frame, 45, 110, 60, 130, (255, 230, 90))
        if not self.curtains_open:
            _draw.rect(frame, 60, 50, 110, 90, (150, 60, 60))
        else:
            _draw.rect(frame, 60, 50, 110, 90, (150, 200, 255))
        if self.present(h):
            color = (90, 90, 160) if self.asleep(h) else (40, 120, 40)
            _draw.disc(frame, 115, 150, 10, color)
        hvac = {0: (150, 150, 150), 1: (230, 80, 40), 2: (60, 120, 230)}[self.thermostat]
        _draw.rect(frame, 120, 60, 140, 90, hvac)
        _draw.bar(frame, 8, 10, 8, 220, h / 24.0, (80, 80, 80))  # time of day
        _draw.bar(frame, 22, 10, 8, 220, (self.t_in + 5.0) / 40.0, (230, 120, 40))  # T_in
        _draw.bar(frame, 32, 10, 4, 220, (self.preferred + 5.0) / 40.0, (40, 160, 40))
        return frame

    # ------------------------------------------------------------------------------- helpers
    def state_vector(self) -> np.ndarray:
        h = self.hour()
        hc = min(h, 24.0 - 1e-9)
        angle = 2.0 * math.pi * h / 24.0
        return np.array(
            [
                math.sin(angle),
                math.cos(angle),
                self.t_in / 30.0,
                self.outside_temp(h) / 30.0,
                self.outside_temp(h + 3.0) / 30.0,
                self.sunlight(h),
                self.price(hc) / PEAK_PRICE,
                float(self.present(hc)),
                float(self.asleep(hc)),
                self.preferred / 30.0,
                self.hours_to_change(h) / 24.0,
                self.hours_to_need(hc) / 24.0,
            ],
            dtype=np.float32,
        ).clip(-2.0, 2.0)

    def _obs(self) -> Any:
        vec = self.state_vector()
        return vec if self.obs_mode == "vector" else describe(vec)


def describe(obs: np.ndarray) -> str:
    """The text observation: the vector observation said in one sentence."""
    s, c = float(obs[0]), float(obs[1])
    minutes = round((math.atan2(s, c) / (2.0 * math.pi) % 1.0) * 24 * 60)
    hh, mm = divmod(minutes, 60)
    who = "away"
    if obs[7] > 0.5:
        who = "home and asleep" if obs[8] > 0.5 else "home and awake"
    return (
        f"It is {hh % 24:02d}:{mm:02d}. Outside {30 * obs[3]:.1f} C, "
        f"{30 * obs[4]:.1f} C in 3 hours, "
        f"sunlight {100 * obs[5]:.0f}%, electricity {0.3 * obs[6]:.2f} EUR per kWh. "
        f"Inside {30 * obs[2]:.1f} C. The occupant is {who}, prefers {30 * obs[9]:.1f} C, "
        f"next change in {24 * obs[10]:.2f} h, needed home in {24 * obs[11]:.2f} h."
    )
