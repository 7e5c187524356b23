"""The run's progress: a fraction of the whole run and an estimate that uses each stage's measured step time."""
from ui.progress import RunProgress, StepTimes

PIXELS = 1024 * 1024


def test_before_stage_b_ever_ran_the_estimate_says_so_and_the_bar_counts_steps():
    progress = RunProgress(StepTimes(), {"stage_c": 20, "stage_b": 10}, PIXELS)
    view = progress.update("stage_c", 5, 20, 5.0)
    assert view.text == "Composition · step 5/20 · 5.0 s · estimating the time left"
    assert view.fraction == 5 / 30 and view.stage == "Composition"


def test_stage_b_s_measured_step_time_is_used_not_stage_c_s():
    times = StepTimes()
    first = RunProgress(times, {"stage_c": 20, "stage_b": 10}, PIXELS)
    first.update("stage_c", 20, 20, 20.0)  # 1 s a Stage C step
    first.update("stage_b", 10, 10, 50.0)  # 3 s a Stage B step
    second = RunProgress(times, {"stage_c": 20, "stage_b": 10}, PIXELS)
    view = second.update("stage_c", 5, 20, 5.0)
    # 15 Stage C steps at 1 s, then 10 Stage B steps and a decode (half a step) at 3 s: 15 + 31.5 s
    assert view.text.endswith("~46 s left") and abs(view.fraction - 5 / 51.5) < 1e-9
    second.update("stage_c", 20, 20, 20.0)
    assert second.update("stage_b", 2, 10, 26.0).text == "Details · step 2/10 · 26.0 s · ~24 s left"


def test_another_size_scales_the_nearest_measured_rate_by_pixels():
    times = StepTimes()
    times.record("stage_b", PIXELS, 2.0)
    assert times.estimate("stage_b", PIXELS // 4) == 0.5 and times.estimate("stage_c", PIXELS) is None


def test_exploring_has_no_later_stage_and_finishing_no_earlier_one():
    explore = RunProgress(StepTimes(), {"stage_c": 20}, PIXELS)
    assert explore.update("stage_c", 10, 20, 10.0).text.endswith("~10 s left")
    finish = RunProgress(StepTimes(), {"stage_b": 10}, PIXELS)
    assert finish.update("stage_b", 5, 10, 10.0).fraction == 0.5
