"""The plumbing behind nst_utils.py, one concern a module. Importing this package imports nothing else.

paths, errors       where things are; the one-line errors a user can fix
vgg19               VGG-19's layer names and mean pixel (no TensorFlow)
sources, download   the published weights files; the resumable, verified downloader; the fetch on first use (no TF)
weights             reading and checking the Keras .h5 and both MatConvNet .mat releases, random features, and which
                    weights a run uses (weights=None: pretrained-model/'s file, fetched on first use) (no TensorFlow)
model_options       the precisions, poolings and optimisers a run may choose (no TensorFlow)
model               load_vgg_model: the frozen feature extractor, in fp32 or bf16
frozen_conv         its conv + ReLU layer, whose backward pass differentiates the image alone (less memory)
memory              the memory estimate and check (no TensorFlow)
style_targets       the style's activations kept small: an n_C × n_C stand-in with each layer's Gram per pixel (no TF)
images              load, save and resize (H, W, 3) float32 RGB images in [0, 1]; sizes are (height_px, width_px)
masks               spatial control: a mask per style, loaded, checked, resized and pooled to each layer (no TensorFlow)
initial             the images an optimisation starts from
colour              colour transfer: luminance only, histogram matching
settings            Settings: every setting of a run, its default, its check and its type on the command line
notebook_costs      the first notebook's cost functions, loaded from its cells (they are written only there)
run                 StyleTransferRun: the thread, pause, stop, wait and the NaN rollback; listeners do the rest
run_folder          the run folder listener: metrics.csv, snapshots, checkpoint, params.json, final.png
evolution           the evolution strip of a run's snapshots
live_view           the live view (image, loss curve, α/β sliders, pause, stop) and the progress bar
optimisers          L-BFGS (scipy, in the run's thread) and the coarse-to-fine sizes; Adam is the notebook's step
cli, cli_options    `python nst_utils.py download | stylise | video` (no TensorFlow in its own process)
headless            a notebook executed by papermill into a run folder, every ending in one line
batch               `stylise` on a folder, a glob or a sweep: the command and its checks
batch_plan          a batch's runs (RunSpec, RunResult), its folder and its resume (finished runs are skipped)
batch_run           running a batch's runs, here or through a runner (nst.cluster's); the failures in one line each
batch_report        batch.csv, the summary and the grids
grid                --sweep parsed and checked; grid.png, the labelled contact sheet of a sweep (Pillow)
cluster             a batch's runs as Dask tasks (--scheduler); the only module that imports Dask
video               optical flow, warp, the forward-backward consistency mask (OpenCV, no TensorFlow)
video_io            clips in and out (imageio-ffmpeg), the video run folder and its resume
video_settings      VideoSettings: the video's settings, checked before a kernel starts
video_synthetic     the moving textured square, the test clip with a known flow
video_cli           `python nst_utils.py video`: notebook 02 headless
"""
