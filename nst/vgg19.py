"""VGG-19's architecture as data: its layer names and the mean pixel it was trained with. No TensorFlow here."""

# ImageNet mean pixel, RGB order, 0-255 scale. Only a fallback: the .mat file carries its own.
VGG_MEAN_RGB_255 = (123.68, 116.779, 103.939)

# VGG-19 "E" configuration: (output channels, number of 3x3 convs) per block; each block ends in a 2x2 pool.
VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))

# VGG-19 halves the image in 5 pools: a shorter side below this leaves pool5 with no pixels.
MIN_SHORT_SIDE_PX = 32


def vgg19_layer_names() -> tuple[str, ...]:
    """The layer names the model can return, in network order: conv1_1, conv1_2, pool1, ..., conv5_4, pool5."""
    names: list[str] = []
    for block, (_, n_convs) in enumerate(VGG19_BLOCKS, start=1):
        names += [f"conv{block}_{i}" for i in range(1, n_convs + 1)]
        names.append(f"pool{block}")
    return tuple(names)


# The 16 conv layers of VGG-19 in network order: conv1_1, conv1_2, conv2_1, ..., conv5_4.
VGG19_CONV_NAMES = tuple(name for name in vgg19_layer_names() if name.startswith("conv"))
