/** The viewer's styles, injected once per mount (the component is not style-isolated). */
export const STYLES = `
.mrv-root { display: flex; flex-direction: column; gap: 4px; outline: none; font: 13px/1.4 var(--st-font, sans-serif); color: var(--st-text-color, #fafafa); }
.mrv-header { display: flex; gap: 0 12px; min-height: 1.4em; white-space: nowrap; }
.mrv-read { flex: none; font-weight: 600; }
.mrv-model { margin-left: 0.5em; padding: 0 0.4em; border: 1px dashed currentColor; border-radius: 0.3em; font-weight: 400; }
.mrv-header-rest { min-width: 0; overflow: hidden; text-overflow: ellipsis; }
.mrv-stages { position: relative; display: flex; gap: 4px; }
.mrv-stage { position: relative; flex: 1 1 0; min-width: 0; background: #000; border-radius: 4px; overflow: hidden; touch-action: none; }
.mrv-corner { position: absolute; max-width: 48%; pointer-events: none; font: 12px/1.35 var(--st-font, sans-serif); color: #fff; text-shadow: 0 0 2px #000, 0 0 3px #000; }
.mrv-corner div { width: fit-content; max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; background: rgba(0,0,0,.5); padding: 0 4px; border-radius: 2px; }
.mrv-topLeft { top: 4px; left: 4px; }
.mrv-topRight { top: 4px; right: 4px; text-align: right; }
.mrv-topRight div, .mrv-bottomRight div { margin-left: auto; }
.mrv-bottomLeft { bottom: 4px; left: 4px; }
.mrv-bottomRight { bottom: 4px; right: 4px; text-align: right; }
.mrv-edge { position: absolute; pointer-events: none; font: 600 14px var(--st-font, sans-serif); color: #ffeb3b; text-shadow: 0 0 2px #000, 0 0 3px #000, 0 0 4px #000; }
.mrv-edge:empty { display: none; }
.mrv-edge-left { left: 6px; top: 50%; transform: translateY(-50%); }
.mrv-edge-right { right: 6px; top: 50%; transform: translateY(-50%); }
.mrv-edge-top { top: 4px; left: 50%; transform: translateX(-50%); }
.mrv-edge-bottom { bottom: 22px; left: 50%; transform: translateX(-50%); }
.mrv-scale { position: absolute; bottom: 4px; left: 50%; transform: translateX(-50%); display: none; align-items: center; gap: 6px; pointer-events: none; font: 12px var(--st-font, sans-serif); color: #fff; text-shadow: 0 0 2px #000, 0 0 3px #000; }
.mrv-scale span { background: rgba(0,0,0,.5); padding: 0 4px; border-radius: 2px; }
.mrv-scale-bar { height: 4px; background: #fff; border: 1px solid #000; border-top: none; box-shadow: 0 0 0 1px rgba(0,0,0,.6); }
.mrv-canvas { display: block; cursor: crosshair; }
.mrv-message { position: absolute; inset: 0; display: none; flex-direction: column; gap: 10px; align-items: center; justify-content: center; color: #bbb; pointer-events: none; font-size: 15px; text-align: center; }
.mrv-message button { pointer-events: auto; background: var(--st-secondary-background-color, #262730); color: inherit; border: 1px solid rgba(250,250,250,.3); border-radius: 6px; padding: 4px 12px; cursor: pointer; font: inherit; }
.mrv-status { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; min-height: 2em; }
.mrv-classes { display: flex; flex-wrap: wrap; gap: 6px; }
.mrv-status button { background: var(--st-secondary-background-color, #262730); color: inherit; border: 1px solid rgba(250,250,250,.2); border-radius: 6px; padding: 3px 10px; cursor: pointer; font: inherit; }
.mrv-status button.mrv-chosen { border-color: var(--st-primary-color, #ff4b4b); background: rgba(255,75,75,.15); }
.mrv-error { color: #ff6b6b; }
.mrv-pending { color: #ffd166; }
.mrv-saved { color: #8bc34a; }
.mrv-unsaved { flex-basis: 100%; margin: 0; padding-left: 1.4em; color: #ff6b6b; }
.mrv-legend { opacity: .75; font-size: 12px; }
.mrv-legend summary { cursor: pointer; width: fit-content; }
.mrv-keys { display: flex; flex-wrap: wrap; gap: 4px 12px; }
.mrv-grid { display: grid; gap: 4px; }
.mrv-case .mrv-stage { outline: 2px solid transparent; outline-offset: -2px; }
.mrv-case .mrv-stage.mrv-active { outline-color: #4fc3f7; box-shadow: 0 0 0 1px #4fc3f7; }
.mrv-case .mrv-stage.mrv-active .mrv-canvas { cursor: crosshair; }
.mrv-case .mrv-header { align-items: center; }
.mrv-toggle { background: var(--st-secondary-background-color, #262730); color: inherit; border: 1px solid rgba(250,250,250,.2); border-radius: 6px; padding: 0 8px; cursor: pointer; font: inherit; }
.mrv-toggle.mrv-on { border-color: #4fc3f7; }
.mrv-root kbd { border: 1px solid rgba(250,250,250,.35); border-radius: 3px; padding: 0 4px; font: 11px monospace; }
`;
