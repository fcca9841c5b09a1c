"""Link zoom for :class:`~heartseg_gui.controllers.planes.PlaneViewer` (View ▸ Link zoom, remembered in the
settings): a zoom or pan in one plane view gives the other shown views the same scale in mm per screen pixel, each
centred on the crosshair. A view's x axis is its image columns; one column is ``plane_spacing(plane)[1]`` mm wide
and the aspect ratio is locked to the spacing, so one number (mm per screen pixel) fixes both axes.
"""

from __future__ import annotations

from heartseg_gui.views.planes import AXIAL, CORONAL, PLANES, SAGITTAL


class ZoomLinkMixin:
    """Mixed into PlaneViewer (uses its ``views``, ``c``, ``settings`` and ``shown``)."""

    link_zoom = False
    _linking = False        # while link zoom moves the other views (their ranges change too)

    def set_link_zoom(self, on: bool) -> None:
        """Link zoom on / off (remembered in the settings); turning it on brings the planes to the scale of the
        active one (the axial view in the axial-only layout)."""
        self.link_zoom = bool(on)
        if self.settings is not None:
            self.settings.link_zoom = self.link_zoom
        if self.link_zoom:
            self.on_zoomed(self.c.active_plane)

    def reset_zoom(self) -> None:
        """Every view shows its whole plane; linked, the reformatted ones then take the axial view's scale."""
        for view in self.views.values():
            view.reset_zoom()
        if self.link_zoom:
            self.on_zoomed(AXIAL)

    def plane_spacing(self, plane: str) -> tuple[float, float]:
        """``(row, col)`` size in mm of one pixel of ``plane``'s image ((1, 1) when the spacing is unknown)."""
        s = self.c.session
        sp = None if s is None else s.volume.spacing
        if sp is None or min(sp) <= 0:
            return 1.0, 1.0
        return {AXIAL: (sp[1], sp[2]), CORONAL: (sp[0], sp[2]), SAGITTAL: (sp[0], sp[1])}[plane]

    def mm_per_screen_pixel(self, plane: str) -> float:
        """How many mm of the patient one screen pixel of ``plane``'s view spans (horizontally; the aspect ratio
        is locked to the spacing, so vertically it is the same)."""
        vb = self.views[plane].viewbox
        (x0, x1), _ = vb.viewRange()
        return (x1 - x0) * self.plane_spacing(plane)[1] / max(1.0, float(vb.width()))

    def on_zoomed(self, source: str) -> None:
        """``source``'s view was zoomed or panned: with link zoom on, the other shown views get its mm scale,
        each centred on the crosshair."""
        if not self.link_zoom or self._linking or not self.shown:
            return
        if not self.views[source].has_image:
            return
        scale = self.mm_per_screen_pixel(source)
        self._linking = True
        try:
            for plane in PLANES:
                if plane != source and self.views[plane].has_image:
                    self._zoom_to(plane, scale)
        finally:
            self._linking = False

    def _zoom_to(self, plane: str, mm_per_pixel: float) -> None:
        view = self.views[plane]
        vb = view.viewbox
        row, col = view.crosshair
        dy, dx = self.plane_spacing(plane)
        half_w = mm_per_pixel * float(vb.width()) / dx / 2
        half_h = mm_per_pixel * float(vb.height()) / dy / 2
        cx, cy = col + 0.5, row + 0.5
        vb.setRange(xRange=(cx - half_w, cx + half_w), yRange=(cy - half_h, cy + half_h), padding=0)
