// Entry point of the mechanics' desktop shell (desktop.html), loaded by the Tauri window.
import { mount } from 'svelte';
import '../app.css';
import './desktop.css';
import App from './App.svelte';

const target = document.getElementById('app');
if (!target) throw new Error('desktop.html has no #app element');

export default mount(App, { target });
