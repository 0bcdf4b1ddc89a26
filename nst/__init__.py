"""The plumbing behind nst_utils.py, one concern a module. Importing this package imports nothing else.

paths, errors     where things are; the one-line errors a user can fix
vgg19             VGG-19's layer names and mean pixel (no TensorFlow)
sources, download the published weights files; the resumable, verified downloader (no TensorFlow)
weights           reading the Keras .h5 and both MatConvNet .mat releases, and random features (no TensorFlow)
model             load_vgg_model: the frozen feature extractor, in fp32 or bf16 (TensorFlow)
memory            the memory estimate and check (no TensorFlow)
images            load, save and resize (H, W, 3) float32 RGB images in [0, 1]; sizes are (height_px, width_px)
initial           the images an optimisation starts from
colour            colour transfer: luminance only, histogram matching
settings          Settings: every setting of a run, its default, its check and its type on the command line
run               StyleTransferRun: the thread, pause, stop, wait and the NaN rollback; listeners do the rest
run_folder        the run folder listener: metrics.csv, snapshots, checkpoint, params.json, evolution strip
evolution         the evolution strip of a run's snapshots
live_view         the live view (image, loss curve, α/β sliders, pause, stop) and the progress bar
optimisers        Adam steps and L-BFGS (scipy, in the run's thread), coarse-to-fine sizes
cli               `python nst_utils.py download | stylise` (no TensorFlow in its own process)
"""
