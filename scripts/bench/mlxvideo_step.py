"""Speed yardstick for issue 16 (README "Speed"; run outside the project in a scratch venv).

Time one forward of Blaizzy/mlx-video's WanModel (masanishi fork, HEAD 973f137) doing the
official forward's work: raw text context embedded per call, no cross-K/V cache, per-token
timesteps (TI2V), f32 weights, 2 full-size TI2V-5B blocks, 512 text tokens. Medians of N."""
import os, sys, time, statistics, types
SRC = os.environ.get("MLXV_SRC", "/tmp/mlxv-src")  # holds mlx_video/ (git archive of the repo)
sys.path.insert(0, SRC)
# Import only the wan_2 package (the top-level package pulls LTX/audio modules in).
import mlx.core as mx
pkg = types.ModuleType("mlx_video"); pkg.__path__ = [f"{SRC}/mlx_video"]; sys.modules["mlx_video"] = pkg
m = types.ModuleType("mlx_video.models"); m.__path__ = [f"{SRC}/mlx_video/models"]; sys.modules["mlx_video.models"] = m
l = types.ModuleType("mlx_video.models.ltx_2"); l.__path__ = [f"{SRC}/mlx_video/models/ltx_2"]; sys.modules["mlx_video.models.ltx_2"] = l
from mlx_video.models.wan_2.config import WanModelConfig
from mlx_video.models.wan_2.wan_2 import WanModel

hw = int(sys.argv[1]) if len(sys.argv) > 1 else 16
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
cfg = WanModelConfig(model_type="ti2v", dim=3072, ffn_dim=14336, num_heads=24, num_layers=2,
                     in_dim=48, out_dim=48, text_dim=4096, freq_dim=256, text_len=512,
                     cross_attn_norm=True, patch_size=(1, 2, 2))
mx.random.seed(0)
t_0 = time.perf_counter(); model = WanModel(cfg); print("built", time.perf_counter()-t_0, flush=True)
model.update(__import__("mlx.utils", fromlist=["tree_map"]).tree_map(
    lambda p: p.astype(mx.float32) if isinstance(p, mx.array) else p, model.parameters()))
mx.eval(model.parameters())
x = mx.random.normal((48, 5, hw, hw))
ctx = mx.random.normal((512, 4096)) * 0.1
L = 5 * (hw // 2) * (hw // 2)
t = mx.full((1, L), 900.0)  # TI2V: per-token timesteps, as the official forward
def step():
    out = model([x], t, [ctx], seq_len=L)
    mx.eval(out)
t_0 = time.perf_counter(); step(); print("warm", time.perf_counter()-t_0, flush=True)
times = []
for _ in range(rounds):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
print({"impl": "mlx-video", "tokens": L, "median_s": statistics.median(times), "times": times})
