window.__TAURI__.core.invoke('ready')
