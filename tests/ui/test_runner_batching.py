"""The studio's runner with a Batcher: several runs at once share their steps; Stop and progress stay per run."""
import threading

import cascade_core as cc
from cascade_core.batching import Batcher
from ui.runner import run_events

SMALL = dict(width=256, height=256, prior_steps=3, decoder_steps=2)


def test_runs_through_one_batcher_share_steps_and_stop_alone(demo_model):
    batcher = Batcher(4)
    stops = [threading.Event() for _ in range(3)]
    requests = [cc.GenerationRequest(p, seed=k, **SMALL) for k, p in enumerate(("a fox", "a cat"))]
    requests.append(cc.GenerationRequest("a dog", seed=2, width=256, height=256, prior_steps=200))  # stopped early
    results = [None] * 3

    def consume(k):
        events = []
        for event in run_events(demo_model, requests[k], stops[k], preview_every=1, decode_every=1, batcher=batcher):
            events.append(event)
            if k == 2 and isinstance(event, cc.StageProgress):
                stops[k].set()  # the third run's Stop, after its first step
        results[k] = events

    with batcher.held():
        threads = [threading.Thread(target=consume, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        while batcher.queued < 3:  # every run has reached the engine
            threading.Event().wait(0.01)
    for thread in threads:
        thread.join(timeout=300)
    for k in (0, 1):
        steps = [e.step for e in results[k] if isinstance(e, cc.StageProgress) and e.stage == "stage_c"]
        assert steps == [1, 2, 3] and isinstance(results[k][-1], cc.Finished)
        assert results[k][-1].seeds == (k,)
    assert isinstance(results[2][-1], cc.Cancelled)
    assert max(images for _, images in batcher.calls) >= 2  # steps were shared
    batcher.close()
