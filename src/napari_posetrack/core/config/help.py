"""Plain-language help for every config field, shown by the training widget as tooltips."""

from __future__ import annotations

FIELD_HELP: dict[str, str] = {
    # data
    "data.validation_fraction": "Share of the labelled frames held out to measure progress (0.1 = one frame "
    "in ten). These frames are never trained on; the best checkpoint is the one that does best on them.",
    "data.input_scaling": "Resize every frame by this factor before the network sees it (0.5 = half width and "
    "height). Smaller is faster and sees more context per pixel, but loses fine detail.",
    "data.centroid_input_scaling": "Top-down only: resize factor for the centroid (animal-finding) model. "
    "Empty = same as input scaling. Large frames often work well at 0.5 or 0.25.",
    "data.crop_size": "Top-down only: side of the square box cut around each animal, in pixels of the scaled "
    "frame. Empty = automatic (largest animal plus padding, rounded up). Must be a multiple of the max stride.",
    "data.crop_padding": "Extra pixels added on each side of the largest animal when the crop size is chosen "
    "automatically, so poses a bit bigger than any labelled one still fit.",
    "data.anchor_part": "Body part used as the centre of each animal (top-down centroid and crops). Empty = the "
    "mean of the visible body parts. Pick a part that is almost always visible and near the body centre.",
    "data.channels": "Colour handling: 'grayscale' (1 channel), 'rgb' (3 channels) or 'auto' (grayscale when "
    "the video content is grayscale).",
    "data.user_instances_only": "Train only on poses a person placed or corrected (not on raw predictions).",
    "data.input_size": "Letterbox: [height, width] every image is scaled to fit inside, keeping its shape, "
    "centred with black borders (never stretched or cut), so label sets mixing image sizes (several cameras, "
    "crops) train at one resolution; keypoints move with their image and predictions come back in each "
    "frame's own pixels. Whole-frame models (single instance, bottom-up, top-down's centroid model) use it "
    "instead of input scaling and centroid input scaling, which they then ignore. A top-down centered-instance "
    "model ignores it: its crops are cut from frames scaled by input scaling (crop size in those pixels), so "
    "an animal is the same size in every crop. Empty = frames keep their own size (times input scaling). "
    "Both must be multiples of the model's max stride.",
    "data.resize_input": "With an input size set: at prediction, on = letterbox every frame into that size, as "
    "in training (steady speed and memory whatever the video); off = frames keep their own pixel size, only "
    "padded to the max stride (for videos whose animals look as big as in the training images; faster on "
    "small frames). Points come back in the frame's own pixels either way.",
    "data.seed": "Random seed for the train/validation split and augmentation; the same seed repeats a run.",
    # model
    "model.pipeline": "What the model predicts: 'single_instance' (one animal per frame), 'centroid' (where "
    "each animal is), 'centered_instance' (the pose of the animal in the middle of a crop), 'bottomup' (all "
    "body parts plus part affinity fields to group them) or 'topdown' (trains centroid + centered_instance).",
    "model.backbone": "The network that turns an image into features: 'unet' (trained from scratch, good "
    "default), ResNet ('resnet18' to 'resnet152': strong, larger), EfficientNet ('efficientnet_b0' to 'b7', "
    "'efficientnet_v2_s/m/l': accurate for their size), MobileNet ('mobilenet_v2', 'mobilenet_v3_small/large': "
    "fast, for real-time rigs), or DeepPoseKit's 'stacked_densenet' and 'stacked_hourglass' (small and fast).",
    "model.top_level": "Deepest level of the backbone: it stops at stride 2^level (5 = 32 times smaller than the "
    "input). Lower is smaller and faster but sees less context. Not used by 'unet' (see its max stride).",
    "model.neck.type": "What mixes the backbone's levels before the heads: 'none', 'fpn' (feature pyramid: "
    "coarse context added to fine detail) or 'bifpn' (EfficientDet's weighted two-way pyramid).",
    "model.neck.levels": "Levels the neck mixes, e.g. [3, 4, 5] (strides 8, 16, 32). Levels above the "
    "backbone's top level (6, 7) are made by extra stride-2 convolutions.",
    "model.neck.channels": "Feature channels of every level the neck outputs.",
    "model.neck.layers": "BiFPN only: how many times the bidirectional block repeats.",
    "model.stacked_densenet.growth_rate": "Stacked DenseNet: channels each densely connected layer adds.",
    "model.stacked_densenet.bottleneck_factor": "Stacked DenseNet: width of the 1x1 bottleneck before each "
    "3x3 convolution, as a multiple of the growth rate.",
    "model.stacked_densenet.compression_factor": "Stacked DenseNet: share of channels kept by each transition "
    "between levels (0.5 = half).",
    "model.stacked_densenet.n_stacks": "Stacked DenseNet: how many hourglasses follow each other; every one is "
    "trained to predict the maps (intermediate supervision), the last one is used.",
    "model.stacked_densenet.activation": "Stacked DenseNet: 'selu' (self-normalising, as in DeepPoseKit) or "
    "'relu'.",
    "model.stacked_densenet.separable": "Stacked DenseNet: use depthwise-separable 3x3 convolutions (fewer "
    "parameters, faster on CPU).",
    "model.stacked_hourglass.filters": "Stacked Hourglass: feature channels of each residual block.",
    "model.stacked_hourglass.bottleneck_factor": "Stacked Hourglass: how much narrower each block's middle is.",
    "model.stacked_hourglass.n_stacks": "Stacked Hourglass: how many hourglasses follow each other (each one is "
    "supervised, the last is used).",
    "model.unet.stem_stride": "Downsample the image by this factor with a first 'stem' layer before the UNet "
    "(empty = no stem). Saves memory and time on large images at the cost of fine detail.",
    "model.unet.max_stride": "How many times the UNet halves the image at its deepest point (16 = four "
    "halvings). Larger sees more context (bigger receptive field) but needs input sizes divisible by it.",
    "model.unet.filters": "Number of feature channels in the first layer. More filters = a bigger, slower, "
    "more capable network.",
    "model.unet.filters_rate": "Factor by which the number of filters grows at each halving (2 = doubles).",
    "model.unet.middle_block": "Add an extra block of convolutions at the deepest, coarsest level.",
    "model.unet.up_interpolate": "Upsample with bilinear interpolation (on: fewer parameters, smoother) or "
    "with learned transposed convolutions (off).",
    "model.unet.convs_per_block": "Number of 3x3 convolutions in each block of the UNet.",
    "model.heads.confmaps.sigma": "Spread (standard deviation, in input pixels) of the Gaussian blob drawn at "
    "each body part in the training targets. Smaller = more precise but harder to learn.",
    "model.heads.confmaps.output_stride": "The body-part maps are this many times smaller than the input "
    "(1 = full resolution). Peaks are refined below the grid, so 2 or 4 is usually enough.",
    "model.heads.confmaps.loss_weight": "Weight of the body-part maps in the total loss.",
    "model.heads.confmaps.levels": "Train the body-part maps on several levels at once (e.g. [3, 4, 5]) with "
    "one shared head; prediction reads the finest. Empty = only the output stride.",
    "model.heads.confmaps.posture_graph": "Also train maps of the skeleton's edges, limbs and whole body "
    "(DeepPoseKit's posture graph). They teach the network how parts connect and cost nothing at prediction.",
    "model.heads.centroids.sigma": "Spread (in input pixels) of the Gaussian blob at each animal's centre "
    "for the centroid model.",
    "model.heads.centroids.output_stride": "The centroid map is this many times smaller than the input.",
    "model.heads.centroids.loss_weight": "Weight of the centroid map in the total loss.",
    "model.heads.centroids.levels": "Train the centroid map on several levels with one shared head.",
    "model.heads.centroids.posture_graph": "Not used by centroid maps (leave off).",
    "model.heads.pafs.sigma": "Bottom-up only: width (in input pixels) of the band around each skeleton edge "
    "where the part affinity field points along the edge. Roughly the thickness of a limb.",
    "model.heads.pafs.output_stride": "The part affinity fields are this many times smaller than the input.",
    "model.heads.pafs.loss_weight": "Weight of the part affinity fields in the total loss.",
    "model.heads.pafs.levels": "Train the part affinity fields on several levels with one shared head.",
    "model.heads.class_vectors.enabled": "Identity model (top-down centered-instance model only): also learn "
    "which animal each crop shows, from the track names given to the labelled animals (e.g. 'female', "
    "'male'). Predictions then get those names as tracks, with no tracker needed. Needs at least two named tracks.",
    "model.heads.class_vectors.classes": "The identities the model tells apart, in output order. Empty = the "
    "track names of the labelled animals, filled in when training starts (and saved with the run).",
    "model.heads.class_vectors.num_fc_layers": "Identity model: hidden layers of the small network that turns "
    "the crop's pooled deepest features into identity scores (0 = one linear layer).",
    "model.heads.class_vectors.num_fc_units": "Identity model: width of each of those hidden layers.",
    "model.heads.class_vectors.loss_weight": "Weight of the identity (cross-entropy) loss in the total loss, "
    "next to the body-part maps' loss.",
    "model.heads.class_maps.enabled": "Bottom-up identity model (bottom-up only): instead of part affinity "
    "fields, learn one map per animal identity, from the track names given to the labelled animals (e.g. "
    "'female', 'male'); body parts are grouped into animals by identity. Predictions then get those names "
    "as tracks, with no tracker needed. Needs at least two named tracks.",
    "model.heads.class_maps.classes": "The identities the model tells apart, in output order. Empty = the "
    "track names of the labelled animals, filled in when training starts (and saved with the run).",
    "model.heads.class_maps.sigma": "Bottom-up identity model: spread of the spot drawn at each body part "
    "of an animal in its identity's map, in input pixels.",
    "model.heads.class_maps.output_stride": "The identity maps are this many times smaller than the input.",
    "model.heads.class_maps.loss_weight": "Weight of the identity maps in the total loss.",
    "model.heads.class_maps.levels": "Train the identity maps on several levels with one shared head.",
    # optimization
    "optimization.batch_size": "Images per training step. Larger is smoother and faster per image but needs "
    "more GPU memory.",
    "optimization.epochs": "Maximum number of passes (epochs) over the training data.",
    "optimization.batches_per_epoch": "Training steps per epoch. Empty = one pass over the training frames, "
    "but at least the minimum below.",
    "optimization.min_batches_per_epoch": "Lower bound on steps per epoch, so tiny datasets still train "
    "enough between validation checks.",
    "optimization.initial_learning_rate": "Step size of the optimiser at the start. Too high diverges, too low "
    "learns slowly; 1e-4 suits Adam.",
    "optimization.optimizer": "Optimisation algorithm: 'adam', 'adamw' (Adam with decoupled weight decay) or "
    "'sgd' (with momentum).",
    "optimization.momentum": "SGD only: how much of the previous step is carried into the next one.",
    "optimization.weight_decay": "Pulls weights towards zero to limit overfitting (0 = off).",
    "optimization.schedule.kind": "How the learning rate changes: 'reduce_on_plateau' (cut it when the "
    "validation loss stalls), 'multi_step' (cut it at fixed epochs), 'one_cycle' (warm up then anneal) or "
    "'none'.",
    "optimization.schedule.factor": "Multiply the learning rate by this when it is cut (plateau and "
    "multi-step).",
    "optimization.schedule.patience": "Plateau: epochs without improvement before the learning rate is cut.",
    "optimization.schedule.min_delta": "Plateau: smallest drop in validation loss that counts as improvement.",
    "optimization.schedule.cooldown": "Plateau: epochs to wait after a cut before watching for a plateau again.",
    "optimization.schedule.min_learning_rate": "The learning rate is never cut below this.",
    "optimization.schedule.milestones": "Multi-step: epochs at which the learning rate is multiplied by the "
    "factor, e.g. [100, 150].",
    "optimization.schedule.initial_factor": "One-cycle: the starting learning rate as a fraction of the "
    "initial (peak) learning rate.",
    "optimization.schedule.final_factor": "One-cycle: the final learning rate as a fraction of the peak.",
    "optimization.schedule.warmup_fraction": "One-cycle: share of training spent raising the learning rate "
    "to its peak.",
    "optimization.early_stopping.enabled": "Stop training when the validation loss has stopped improving.",
    "optimization.early_stopping.min_delta": "Smallest drop in validation loss that counts as improvement.",
    "optimization.early_stopping.patience": "Epochs without improvement before training stops.",
    "optimization.gradient_clip_norm": "Rescale gradients whose overall size exceeds this value (empty = off). "
    "Helps when the loss occasionally spikes.",
    "optimization.max_iterations": "Stop after this many training steps in total (empty = no limit).",
    "optimization.max_training_hours": "Stop after this many hours of training (empty = no limit).",
    "optimization.hard_keypoint_mining.enabled": "Give the body parts the model currently gets most wrong "
    "extra weight in the loss (online hard keypoint mining).",
    "optimization.hard_keypoint_mining.hard_to_easy_ratio": "A body part counts as hard when its loss is at "
    "least this many times the smallest body-part loss.",
    "optimization.hard_keypoint_mining.min_hard_keypoints": "Always treat at least this many body parts as "
    "hard.",
    "optimization.hard_keypoint_mining.max_hard_keypoints": "Treat at most this many body parts as hard "
    "(empty = no limit).",
    "optimization.hard_keypoint_mining.loss_scale": "Extra weight given to the hard body parts' loss.",
    "optimization.augmentation.rotation_probability": "Chance that a training image is rotated by a random "
    "angle (1 = always, 0 = never).",
    "optimization.augmentation.rotation_min_angle": "Smallest random rotation, in degrees.",
    "optimization.augmentation.rotation_max_angle": "Largest random rotation, in degrees (use -180..180 when "
    "animals face any direction).",
    "optimization.augmentation.scale_probability": "Chance that a training image is zoomed by a random factor.",
    "optimization.augmentation.scale_min": "Smallest random zoom (0.9 = 10% smaller).",
    "optimization.augmentation.scale_max": "Largest random zoom (1.1 = 10% larger).",
    "optimization.augmentation.translate_probability": "Chance that a training image is shifted.",
    "optimization.augmentation.translate_min": "Smallest random shift, in pixels (applied to x and y).",
    "optimization.augmentation.translate_max": "Largest random shift, in pixels.",
    "optimization.augmentation.flip_probability": "Chance that a training image is mirrored; left/right body "
    "parts (the skeleton's symmetries) are swapped so labels stay correct.",
    "optimization.augmentation.flip_direction": "Mirror 'horizontal' (left-right) or 'vertical' (up-down).",
    "optimization.augmentation.uniform_noise_probability": "Chance of adding random per-pixel noise drawn "
    "evenly between the min and max (in 0-255 intensity units).",
    "optimization.augmentation.uniform_noise_min": "Smallest uniform noise value (0-255 units).",
    "optimization.augmentation.uniform_noise_max": "Largest uniform noise value (0-255 units).",
    "optimization.augmentation.gaussian_noise_probability": "Chance of adding bell-shaped random per-pixel "
    "noise.",
    "optimization.augmentation.gaussian_noise_mean": "Average Gaussian noise value (0-255 units).",
    "optimization.augmentation.gaussian_noise_std": "Spread of the Gaussian noise (0-255 units).",
    "optimization.augmentation.contrast_probability": "Chance of a random contrast change (gamma curve).",
    "optimization.augmentation.contrast_min_gamma": "Smallest gamma (below 1 brightens dark areas).",
    "optimization.augmentation.contrast_max_gamma": "Largest gamma (above 1 darkens mid-tones).",
    "optimization.augmentation.brightness_probability": "Chance of a random brightness shift.",
    "optimization.augmentation.brightness_min": "Smallest brightness added (0-255 units).",
    "optimization.augmentation.brightness_max": "Largest brightness added (0-255 units).",
    "optimization.initialization": "'random' to start from scratch, 'imagenet' to start a ResNet, EfficientNet "
    "or MobileNet from weights learned on ImageNet photos, or a previous run (its folder or checkpoint, from "
    "any project): every weight whose name and shape match is loaded, the rest start random.",
    "optimization.pretrained_weights": "ImageNet weights file for 'imagenet' initialisation (torchvision's file, "
    "e.g. resnet50-11ad3fa6.pth). Empty = look in torch's cache (~/.cache/torch/hub/checkpoints); nothing is "
    "downloaded.",
    "optimization.mixed_precision": "Train in 16-bit floating point where safe: faster and lighter on recent "
    "GPUs, no effect on CPU.",
    "optimization.compile": "Compile the network with torch.compile: slower start, faster steps.",
    # outputs
    "outputs.runs_folder": "Folder in which each training run gets its own sub-folder.",
    "outputs.run_name_prefix": "Text put in front of automatically generated run names.",
    "outputs.run_name": "Name of the run folder (empty = date, time and pipeline).",
    "outputs.keep": "Which checkpoints to keep: 'best' (lowest validation loss), 'last' or 'both'.",
}
