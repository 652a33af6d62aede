import Layout from "@/components/Layout";
import SettingsAccount from "@/components/SettingsAccount";
import SettingsCameras from "@/components/SettingsCameras";
import SettingsKeys from "@/components/SettingsKeys";
import SettingsNotify from "@/components/SettingsNotify";
import SettingsUsers from "@/components/SettingsUsers";
import { can } from "@/lib/api";
import { useMe } from "@/lib/session";
import s from "@/styles/settings.module.css";

export default function Page() {
  const me = useMe();
  if (!me) return null; // _app renders pages only once /auth/me answered
  const sections = [
    { id: "account", title: "My account", show: true, body: <SettingsAccount me={me} /> },
    { id: "cameras", title: "Cameras", show: can(me, "cameras:read"), body: <SettingsCameras me={me} /> },
    { id: "users", title: "Users", show: can(me, "users:admin"), body: <SettingsUsers me={me} /> },
    { id: "apikeys", title: "API keys", show: can(me, "apikeys:write"), body: <SettingsKeys me={me} /> },
    { id: "notifications", title: "Notifications", show: can(me, "alerts:read"), body: <SettingsNotify me={me} /> },
  ].filter((x) => x.show);
  return (
    <Layout title="Settings">
      <nav aria-label="Settings sections" className={s.toc}>
        <ul>
          {sections.map((x) => (
            <li key={x.id}>
              <a href={`#${x.id}`}>{x.title}</a>
            </li>
          ))}
        </ul>
      </nav>
      {sections.map((x) => (
        <section key={x.id} id={x.id} aria-labelledby={`h-${x.id}`} className={s.section} data-testid={`settings-${x.id}`}>
          <h2 id={`h-${x.id}`}>{x.title}</h2>
          {x.body}
        </section>
      ))}
    </Layout>
  );
}
