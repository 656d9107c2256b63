"""Page maths, no networks: reading and resizing images (`imaging`), wire pixels (`pixels`),
CIELAB and the blend (`color`), what on a page is line art and what tone (`lineart`), the
page-size result with the page's own ink (`detail`), and what a run gives back (`output`:
`Colorization`, its layers and sizes). Each GPU twin stands beside its numpy reference
(`imaging_gpu`, `color_gpu`, `detail_gpu`)."""
